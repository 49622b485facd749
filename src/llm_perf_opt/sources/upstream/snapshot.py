"""A local Hugging Face snapshot folder: ``config.json`` plus the remote-code ``*.py`` files, hashed.

Only ``config.json`` and the top-level ``*.py`` files are ever opened.  Weight files (``*.safetensors``, ``*.bin``,
...) are listed by name so a report can say they were present, and never read.  The code bytes are kept in memory:
the loader executes exactly the bytes that were hashed, so a file edited after it was read cannot slip in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from llm_perf_opt.errors import ConfigError

__all__ = ["WEIGHT_SUFFIXES", "CodeFile", "Snapshot", "read_snapshot", "sha256_hex"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".npz")


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@frozen(kw_only=True)
class CodeFile:
    """One remote-code file of a snapshot."""

    name: str = field(metadata={"help": "file name inside the snapshot folder"})
    sha256: str = field(metadata={"help": "sha256 of the file bytes"})
    size_bytes: int = field(metadata={"help": "file size"})


@frozen(kw_only=True, eq=False)
class Snapshot:
    """What a snapshot folder holds: parsed config, hashed code (bytes kept), weight file names (never read)."""

    root: Path = field(metadata={"help": "the snapshot folder"})
    source: str = field(metadata={"help": "model source name it came from (hf-snapshot:PATH or hf:REPO@REV)"})
    config: Mapping[str, Any] = field(repr=False, metadata={"help": "config.json, parsed"})
    config_sha256: str = field(metadata={"help": "sha256 of config.json"})
    code_files: tuple[CodeFile, ...] = field(metadata={"help": "top-level *.py files, sorted by name"})
    code: Mapping[str, bytes] = field(repr=False, metadata={"help": "file name -> the bytes that were hashed"})
    weight_files: tuple[str, ...] = field(default=(), metadata={"help": "weight file names present (never read)"})
    hf_repo: str | None = field(default=None, metadata={"help": "Hub repository id, for hf: sources"})
    hf_revision: str | None = field(default=None, metadata={"help": "resolved commit hash, for hf: sources"})

    @property
    def auto_map(self) -> Mapping[str, str]:
        """``config.json``'s ``auto_map`` (empty when absent)."""
        value = self.config.get("auto_map") or {}
        return value if isinstance(value, Mapping) else {}

    @property
    def code_hashes(self) -> dict[str, str]:
        """File name -> sha256, every remote-code file."""
        return {f.name: f.sha256 for f in self.code_files}

    @property
    def fingerprint(self) -> str:
        """sha256 over ``config.json`` and every code file (name and hash): one id for the code that runs."""
        lines = [f"config.json {self.config_sha256}"] + [f"{f.name} {f.sha256}" for f in self.code_files]
        return sha256_hex("\n".join(lines).encode("utf-8"))

    def listing(self) -> str:
        """``name sha256=...`` for every code file, comma separated (one line, for messages)."""
        return ", ".join(f"{f.name} sha256={f.sha256}" for f in self.code_files)


def read_snapshot(
    path: Path | str, *, source: str | None = None, hf_repo: str | None = None, hf_revision: str | None = None
) -> Snapshot:
    """Read and hash a snapshot folder; a missing folder or a bad ``config.json`` is a one-line ConfigError."""
    root = Path(path).expanduser()
    name = source or f"hf-snapshot:{path}"
    if not root.is_dir():
        raise ConfigError(
            f"model source {name}: {root} is not a folder; expected a Hugging Face snapshot folder holding "
            "config.json and the remote-code *.py files"
        )
    config_bytes = _read(root / "config.json", name)
    config = _parse_config(config_bytes, name)
    code: dict[str, bytes] = {}
    weights: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(WEIGHT_SUFFIXES):
            weights.append(entry.name)
        elif entry.suffix == ".py" and entry.is_file():
            code[entry.name] = _read(entry, name)
    files = tuple(CodeFile(name=n, sha256=sha256_hex(b), size_bytes=len(b)) for n, b in code.items())
    return Snapshot(
        root=root,
        source=name,
        config=config,
        config_sha256=sha256_hex(config_bytes),
        code_files=files,
        code=code,
        weight_files=tuple(weights),
        hf_repo=hf_repo,
        hf_revision=hf_revision,
    )


def _read(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"model source {source}: {path.name} is missing from {path.parent}; a snapshot folder holds config.json "
            "and the remote-code *.py files"
        ) from None
    except OSError as exc:
        raise ConfigError(f"model source {source}: cannot read {path}: {exc.strerror}") from None


def _parse_config(data: bytes, source: str) -> dict[str, Any]:
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model source {source}: config.json is not valid JSON ({exc}); re-download it") from None
    if not isinstance(config, dict):
        raise ConfigError(f"model source {source}: config.json must hold a JSON object, got {type(config).__name__}")
    return config
