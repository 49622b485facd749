"""Rendered figures on disk, keyed by what they draw: a figure whose data, drawing code and plotting library are
unchanged is read back instead of drawn again (torch- and matplotlib-free).

Layout: ``<root>/figures/<key>.json`` holding the format, the key and each file's bytes (base64) with its sha256.
The key is the caller's (a sha256 over the figure's data, the hash of the code that draws it and the library
versions: :func:`figure_key`).  Writes are atomic like the trace entries; an entry that cannot be read back
(truncated, corrupted, another format or key, a file whose digest does not match) is deleted with a
:class:`~llm_perf_opt.tracecache.store.TraceCacheWarning` and the caller draws again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from llm_perf_opt.tracecache.key import code_hash
from llm_perf_opt.tracecache.store import default_cache_dir, drop_entry, read_entry, write_entry

__all__ = ["FIGURES_FORMAT", "FigureCache", "figure_key"]

FIGURES_FORMAT = 1
"""Version of the figure entry layout; an entry of another format is a miss (and is replaced)."""


def figure_key(*, stem: str, data: Any, code: Iterable[str], libraries: Iterable[str]) -> str:
    """Hex sha256 of one figure: its ``stem``, the ``data`` its drawer reads (JSON-able; floats exactly), the hash of
    the ``code`` files that draw it (paths under ``llm_perf_opt``, see :func:`code_hash`) and the installed
    versions of the ``libraries`` (distribution names) that turn it into bytes."""
    payload = {
        "format": FIGURES_FORMAT,
        "stem": stem,
        "data": data,
        "code": code_hash(code),
        "libraries": {name: _version(name) for name in sorted(libraries)},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class FigureCache:
    """Figure entries under ``root`` (default :func:`~llm_perf_opt.tracecache.store.default_cache_dir`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.folder = self.root / "figures"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> dict[str, bytes] | None:
        """The files stored under ``key`` (name -> bytes), or None (missing; unreadable ones are deleted with a
        warning)."""
        path = self.path(key)
        raw = read_entry(path, redo="drawing again")
        if raw is None:
            return None
        try:
            return _decode(raw, key)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            drop_entry(path, exc, redo="drawing again")
            return None

    def store(self, key: str, files: Mapping[str, bytes]) -> None:
        """Write ``files`` under ``key`` atomically; a failure to write is a warning (the cache is an optimisation)."""
        entry = {
            "format": FIGURES_FORMAT,
            "key": key,
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "base64": base64.b64encode(data).decode("ascii")}
                for name, data in sorted(files.items())
            },
        }
        write_entry(self.path(key), json.dumps(entry, separators=(",", ":")).encode("ascii"))

    def entries(self) -> list[Path]:
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []


def _decode(raw: bytes, key: str) -> dict[str, bytes]:
    entry = json.loads(raw)
    if not isinstance(entry, dict) or entry.get("format") != FIGURES_FORMAT or entry.get("key") != key:
        raise ValueError("another format or key")
    files: dict[str, bytes] = {}
    for name, stored in entry["files"].items():
        data = base64.b64decode(stored["base64"], validate=True)
        if hashlib.sha256(data).hexdigest() != stored["sha256"]:
            raise ValueError(f"{name} does not match its digest")
        files[name] = data
    return files


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
