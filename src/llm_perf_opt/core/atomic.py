"""Nothing half-written on disk: files and whole output folders appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llm_perf_opt.errors import UserError

__all__ = [
    "OUTPUT_MARKER",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_folder",
    "current_umask",
    "staged_directory",
]


def current_umask() -> int:
    """The process's file mode creation mask, read without changing it (``/proc/self/status`` on Linux: setting and
    restoring the mask would race with other threads creating files); elsewhere set and restored at once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; the file gets what open() would give it
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes` (``\\n`` line endings on every platform)."""
    atomic_write_bytes(path, text.encode("utf-8"))


OUTPUT_MARKER = ".llm-perf-opt-output"
"""An empty file in every folder :func:`staged_directory` publishes: it marks the folder as one this tool may
replace whole."""


def _refusal(target: Path, recognise: tuple[str, ...]) -> str | None:
    """Why ``target`` may not be replaced whole (None when it may): a file, the working folder or one above it, or
    a non-empty folder this tool did not write (no marker, none of the ``recognise`` names)."""
    if target.exists() and not target.is_dir():
        return f"{target} exists and is not a folder; pass a folder path"
    cwd = Path.cwd().resolve()
    resolved = target.resolve()
    if resolved == cwd or resolved in cwd.parents:
        return f"{target} is the working folder or holds it; pass a new folder such as {target / 'out'}"
    if not target.is_dir() or not any(target.iterdir()):
        return None
    if (target / OUTPUT_MARKER).exists() or any((target / name).exists() for name in recognise):
        return None
    return f"{target} holds files llm-perf-opt did not write; pass a new or empty folder (it is replaced whole)"


def check_output_folder(target: Path, *, recognise: tuple[str, ...] = (), flag: str = "--out") -> None:
    """Fail fast (before any work) unless ``target`` can be replaced whole by :func:`staged_directory`: it is a
    folder this tool wrote (or absent, or empty), and a folder can be created beside it (a real write probe, so a
    read-only or virtual file system such as ``/proc`` is caught even for root)."""
    target = Path(target)
    reason = _refusal(target, recognise)
    if reason is not None:
        raise UserError(f"{flag} {reason}")
    existing = next((p for p in target.absolute().parents if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserError(f"{flag} {target} cannot be created: {existing} is not a folder; pass a folder path")
    try:
        probe = tempfile.mkdtemp(prefix=".probe.", dir=existing)
    except OSError as exc:
        raise UserError(
            f"{flag} {target} is not writable ({exc.strerror or exc} in {existing}); choose another folder"
        ) from None
    Path(probe).rmdir()


@contextlib.contextmanager
def staged_directory(target: Path, *, recognise: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success the staging folder *replaces* ``target`` whole.

    Nothing of an earlier output survives (a stale layer page, an old plot).  ``target`` must be absent, empty, or a
    folder this tool wrote (its :data:`OUTPUT_MARKER`, or one of the ``recognise`` file names of outputs written
    before the marker existed); anything else is a :class:`UserError`, so a user's own folder is never deleted.
    The swap is two renames (old aside, new in) and the old folder is then removed; on an exception the staging
    folder is removed and ``target`` is left as it was.
    """
    target = Path(target).absolute()
    reason = _refusal(target, recognise)
    if reason is not None:
        raise UserError(f"cannot write {reason}")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    try:
        stage.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; the published folder gets what mkdir would
        yield stage
        (stage / OUTPUT_MARKER).write_bytes(b"")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            target.replace(old)  # old is an empty folder: the rename replaces it
            stage.replace(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.replace(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
