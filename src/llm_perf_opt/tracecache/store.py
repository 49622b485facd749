"""The trace cache on disk: one JSON file per key, written atomically, read defensively.

Layout: ``<root>/traces/<key>.json`` holding a :class:`CachedTrace` (format version, the key and its parts, the
:class:`~llm_perf_opt.tracer.result.TraceResult` and what the source reported about the run), serialised with the
project's cattrs converter.  A write goes to a temporary file in the same folder and is renamed over the entry
(:func:`~llm_perf_opt.core.atomic.atomic_write_bytes`), so concurrent writers of one key leave one complete entry
and a reader never sees half of one.  An entry that cannot be read back (truncated, corrupted, another format, or
holding another key) is deleted with a :class:`TraceCacheWarning`, and the caller traces again.

A trace whose decode was fitted also leaves a *basis entry* in the same folder (``<key>.basis.json``, its own key:
the trace's parts without the output length, :func:`basis_parts`): the trace, its provenance and its
:class:`~llm_perf_opt.tracer.derive.DecodeBasis`, from which a trace of the same shapes at another output length is
derived without torch.

Shapes traced at one batch leave a note (``<key>.seen.json``, keyed by the parts without the batch and the output
length, :func:`batch_parts`); a trace at another batch of the same shapes then also keeps a
:class:`~llm_perf_opt.tracer.batch_derive.BatchBasis` beside it (``<key>.batch.json``, with its trace; the note is
dropped), from which other batches are derived without torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from attrs import field, frozen

from llm_perf_opt.contracts.converter import converter
from llm_perf_opt.core.atomic import atomic_write_bytes
from llm_perf_opt.tracecache.key import trace_key
from llm_perf_opt.tracer.batch_derive import BatchBasis, batch_basis_from_json, batch_basis_to_json
from llm_perf_opt.tracer.derive import DecodeBasis, basis_from_json, basis_to_json
from llm_perf_opt.tracer.result import TraceResult

__all__ = [
    "CACHE_DIR_ENV",
    "FORMAT",
    "CacheInfo",
    "CachedTrace",
    "TraceCache",
    "TraceCacheWarning",
    "basis_parts",
    "batch_parts",
    "default_cache_dir",
    "drop_entry",
    "read_entry",
    "usable_cache",
    "write_entry",
]

_T = TypeVar("_T")
BASIS_SUFFIX = ".basis.json"
"""File name ending of a decode-basis entry (``<key>.basis.json``, beside the trace entries)."""

BATCH_SUFFIX = ".batch.json"
"""File name ending of a batch-basis entry (``<key>.batch.json``)."""
QUEUE_FOLDER = "prepare"
"""Folder under the cache root where ``analyze`` queues the batch bases a background process keeps
(:mod:`llm_perf_opt.analysis.prepare`)."""

WISHES_FOLDER = "wishes"
"""Folder of the queue where a batch change made while the background process builds its shapes' batch basis asks
that process for its batch (:func:`llm_perf_opt.analysis.prepare.waited_for_basis`)."""

SEEN_SUFFIX = ".seen.json"
"""File name ending of a note that the shapes of a batch key were traced at some batch (``<key>.seen.json``: the
next other batch then builds the basis)."""

REFUSED = b'{"basis":"refused"}'
"""The note's content when a batch basis of its shapes was built and did not reproduce its own batches."""

CACHE_DIR_ENV = "LLM_PERF_OPT_CACHE_DIR"
FORMAT = 1
"""Version of the entry layout; an entry of another format is a miss (and is replaced)."""


class TraceCacheWarning(UserWarning):
    """A cache entry was unreadable and is rebuilt, or the cache could not be written (the result is still right)."""


def default_cache_dir() -> Path:
    """``$LLM_PERF_OPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/llm-perf-opt``, else ``~/.cache/llm-perf-opt``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llm-perf-opt"


@frozen(kw_only=True)
class CachedTrace:
    """One cache entry."""

    format: int = field(metadata={"help": "entry layout version (FORMAT)"})
    key: str = field(metadata={"help": "hex sha256 of the parts (tracecache.key.trace_key)"})
    parts: str = field(metadata={"help": "canonical JSON of the key's parts, for `cache info` and debugging"})
    trace: TraceResult = field(metadata={"help": "the trace result"})
    provenance: dict[str, Any] | None = field(
        default=None, metadata={"help": "what the source reported about the traced run (upstream sources), or None"}
    )


@frozen(kw_only=True)
class CacheInfo:
    """What ``llm-perf-opt cache info`` prints."""

    root: Path = field(metadata={"help": "cache folder"})
    entries: int = field(metadata={"help": "trace entries"})
    bytes: int = field(metadata={"help": "bytes on disk of the entries (traces, decode bases, obsolete figures)"})
    bases: int = field(default=0, metadata={"help": "decode-basis entries (<key>.basis.json)"})
    batch_bases: int = field(default=0, metadata={"help": "batch entries (<key>.batch.json) holding a batch basis"})
    batch_marks: int = field(default=0, metadata={"help": "notes of a traced batch (<key>.seen.json)"})
    obsolete: int = field(default=0, metadata={"help": "figure entries earlier versions kept (cache clear removes)"})
    queued: int = field(default=0, metadata={"help": "batch bases queued for the background process (prepare/)"})


def read_entry(path: Path, *, redo: str) -> bytes | None:
    """The bytes of the cache entry at ``path``; None when it is missing, or cannot be read (a warning ending in
    ``redo``: what the caller does instead)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.warn(
            f"trace cache entry {path} cannot be read ({exc.strerror}); {redo}", TraceCacheWarning, stacklevel=3
        )
        return None


def drop_entry(path: Path, exc: Exception, *, redo: str) -> None:
    """Warn that the entry at ``path`` is unusable (``exc``'s first line says why) and delete it."""
    why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    warnings.warn(f"trace cache entry {path} is unreadable ({why}); {redo}", TraceCacheWarning, stacklevel=3)
    with contextlib.suppress(OSError):
        path.unlink()


def write_entry(path: Path, data: bytes) -> None:
    """Write an entry atomically; a failure to write is a warning (the cache is an optimisation)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        warnings.warn(
            f"trace cache {path.parent} is not writable ({exc.strerror}); not cached", TraceCacheWarning, stacklevel=3
        )


def basis_parts(parts: Mapping[str, Any]) -> dict[str, Any]:
    """The key parts of the decode basis of the trace keyed by ``parts``: the same, less the output length."""
    workload = {k: v for k, v in parts["workload"].items() if k != "max_new_tokens"}
    return {**parts, "workload": workload, "entry": "decode-basis"}


def batch_parts(parts: Mapping[str, Any]) -> dict[str, Any]:
    """The key parts of the batch entry of the trace keyed by ``parts``: the same, less the batch and the output
    length (a trace derived at another batch carries its decode basis, which answers other output lengths)."""
    workload = {k: v for k, v in parts["workload"].items() if k not in ("batch_size", "max_new_tokens")}
    return {**parts, "workload": workload, "entry": "batch-basis"}


def usable_cache(root: Path | None = None) -> TraceCache | None:
    """The trace cache under ``root``, or None with one warning when its folder is a file (nothing can be cached
    there; every read and write would fail)."""
    cache = TraceCache(root)
    for folder in (cache.root, cache.folder):
        if folder.exists() and not folder.is_dir():
            warnings.warn(
                f"trace cache {folder} is not a folder; not cached (set {CACHE_DIR_ENV} to a folder)",
                TraceCacheWarning,
                stacklevel=2,
            )
            return None
    return cache


class TraceCache:
    """Trace entries under ``root`` (default :func:`default_cache_dir`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.folder = self.root / "traces"
        self.obsolete = self.root / "figures"  # rendered figures of earlier versions (figures are now drawn)
        self.queue = self.root / QUEUE_FOLDER  # batch bases a background process is asked to keep
        self.wishes = self.queue / WISHES_FOLDER  # batches someone waits for while that process works

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def basis_path(self, key: str) -> Path:
        return self.folder / f"{key}{BASIS_SUFFIX}"

    def load(self, key: str) -> CachedTrace | None:
        """The entry for ``key``, or None (missing; unreadable ones are deleted with a warning)."""
        return self._read(self.path(key), key, lambda raw: converter.structure(raw, CachedTrace))

    def _read(self, path: Path, key: str, decode: Callable[[dict[str, Any]], _T]) -> _T | None:
        """``decode`` of the JSON object at ``path`` (after checking its format and ``key``), or None: missing, or
        unusable (deleted with a warning)."""
        data = read_entry(path, redo="tracing again")
        if data is None:
            return None
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("key") != key:
                raise ValueError("another format or key")
            return decode(raw)
        except Exception as exc:  # any decoding failure means the same thing: the entry is unusable
            drop_entry(path, exc, redo="rebuilding it")
            return None

    def store(self, entry: CachedTrace) -> None:
        """Write ``entry`` atomically; a failure to write is a warning (the cache is an optimisation)."""
        text = json.dumps(converter.unstructure(entry), separators=(",", ":"))
        write_entry(self.path(entry.key), text.encode("utf-8"))

    def remember(self, parts: Mapping[str, Any], trace: TraceResult, provenance: dict[str, Any] | None) -> CachedTrace:
        """Store ``trace`` (and the source's ``provenance``) under the key of ``parts``; returns the entry."""
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        entry = CachedTrace(format=FORMAT, key=trace_key(parts), parts=text, trace=trace, provenance=provenance)
        self.store(entry)
        return entry

    def store_basis(self, parts: Mapping[str, Any], entry: CachedTrace, basis: DecodeBasis) -> None:
        """Store the decode ``basis`` of the trace in ``entry`` (keyed by ``parts``) under :func:`basis_parts`."""
        key = trace_key(basis_parts(parts))
        payload = {"format": FORMAT, "key": key, "trace": converter.unstructure(entry), "basis": basis_to_json(basis)}
        write_entry(self.basis_path(key), json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    def load_basis(self, parts: Mapping[str, Any]) -> tuple[CachedTrace, DecodeBasis] | None:
        """The trace entry and decode basis stored for the shapes of ``parts`` at any output length, or None
        (missing; unreadable ones are deleted with a warning)."""
        key = trace_key(basis_parts(parts))
        return self._read(
            self.basis_path(key),
            key,
            lambda raw: (converter.structure(raw["trace"], CachedTrace), basis_from_json(raw["basis"])),
        )

    def batch_path(self, key: str) -> Path:
        return self.folder / f"{key}{BATCH_SUFFIX}"

    def batch_seen(self, parts: Mapping[str, Any]) -> bool:
        """Were the shapes of ``parts`` traced before at some batch (a note or a batch basis exists)?"""
        key = trace_key(batch_parts(parts))
        return (self.folder / f"{key}{SEEN_SUFFIX}").is_file() or self.batch_path(key).is_file()

    def mark_batch(self, parts: Mapping[str, Any], *, refused: bool = False) -> None:
        """Note that the shapes of ``parts`` were traced (unless they are noted already); with ``refused``, that a
        batch basis of them was built and not kept (no later batch tries again: :meth:`basis_refused`)."""
        path = self.folder / f"{trace_key(batch_parts(parts))}{SEEN_SUFFIX}"
        if refused:
            write_entry(path, REFUSED)
        elif not path.is_file():
            write_entry(path, b"{}")

    def basis_refused(self, parts: Mapping[str, Any]) -> bool:
        """Whether a batch basis of the shapes of ``parts`` was built and not kept (:meth:`mark_batch`)."""
        try:
            return (self.folder / f"{trace_key(batch_parts(parts))}{SEEN_SUFFIX}").read_bytes() == REFUSED
        except OSError:
            return False

    def store_batch_basis(self, parts: Mapping[str, Any], entry: CachedTrace, basis: BatchBasis) -> None:
        """Store the batch ``basis`` built with the trace in ``entry`` (keyed by ``parts``) under
        :func:`batch_parts`."""
        key = trace_key(batch_parts(parts))
        payload = {
            "format": FORMAT,
            "key": key,
            "trace": converter.unstructure(entry),
            "basis": batch_basis_to_json(basis),
        }
        write_entry(self.batch_path(key), json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        with contextlib.suppress(FileNotFoundError):  # the basis says what the note said
            (self.folder / f"{key}{SEEN_SUFFIX}").unlink()

    def load_batch_basis(self, parts: Mapping[str, Any]) -> tuple[CachedTrace, BatchBasis] | None:
        """The trace entry and batch basis stored for the shapes of ``parts`` at any batch, or None (missing, or
        unreadable: deleted with a warning)."""
        key = trace_key(batch_parts(parts))

        return self._read(
            self.batch_path(key),
            key,
            lambda raw: (converter.structure(raw["trace"], CachedTrace), batch_basis_from_json(raw["basis"])),
        )

    def get_or_trace(
        self, parts: Mapping[str, Any], trace: Callable[[], tuple[TraceResult, dict[str, Any] | None]]
    ) -> tuple[TraceResult, dict[str, Any] | None, bool]:
        """``(trace, provenance, hit)``: the entry for the key of ``parts``, else ``trace()`` stored under it."""
        key = trace_key(parts)
        hit = self.load(key)
        if hit is not None:
            return hit.trace, hit.provenance, True
        result, provenance = trace()
        self.remember(parts, result, provenance)
        return result, provenance, False

    def info(self) -> CacheInfo:
        files = _entries(self.folder)
        bases = sum(p.name.endswith(BASIS_SUFFIX) for p in files)
        batch = sum(p.name.endswith(BATCH_SUFFIX) for p in files)
        marks = sum(p.name.endswith(SEEN_SUFFIX) for p in files)
        old = _entries(self.obsolete)
        size = sum(_size(p) for p in files + old)
        return CacheInfo(
            root=self.root,
            entries=len(files) - bases - batch - marks,
            bytes=size,
            bases=bases,
            batch_bases=batch,
            batch_marks=marks,
            obsolete=len(old),
            queued=len(_entries(self.queue)),
        )

    def clear(self) -> CacheInfo:
        """Delete every trace and decode-basis entry (and leftover temporary files, the figure entries earlier
        versions kept, and the queued requests for batch bases); returns what was there."""
        before = self.info()
        for folder in (self.folder, self.obsolete, self.queue, self.wishes):
            doomed = _entries(folder) + (sorted(folder.glob(".*.tmp")) if folder.is_dir() else [])
            for path in doomed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return before


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
