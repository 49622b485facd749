"""The on-disk report store shared by ``analyze --store`` and the HTTP service.

Layout under a root folder::

    <root>/<report_id> -> .versions/<id>.<pid>.<r>   a published report (a symlink to its current version)
    <root>/.versions/<id>.<pid>.<r>/  one version of a report: every file complete, plus MANIFEST_NAME
    <root>/.staging/<id>.<pid>.<r>/   a report being written (never read)
    <root>/.jobs/<report_id>.json     the state of a build that has not published (queued, running, failed)
    <root>/.locks/<report_id>.lock    held (``flock``) by the process building that report
    <root>/.trash/<id>.<pid>.<r>/     a deleted report on its way out

A report is written into a staging folder, each file fsynced, the manifest (size and SHA-256 of every file) last;
the folder is renamed into ``.versions/`` and the report's symlink is created, or for a rebuild renamed over the old
symlink in one ``rename(2)``: a reader sees the whole old report or the whole new one, never a missing one.  A reader
resolves the symlink once and reads every file from that version.  Reads check the manifest, so a damaged folder is
reported as damaged, never served.  ``report_id`` is checked against its exact format before it touches a path,
which rules out traversal.  (Folders published by older versions, real folders at ``<root>/<id>``, are still read.)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from attrs import frozen

from llm_perf_opt.core.processes import pid_alive
from llm_perf_opt.errors import LlmPerfOptError, UserError

__all__ = [
    "MANIFEST_NAME",
    "REPORT_ID_PATTERN",
    "RESOLVE_ATTEMPTS",
    "JobRecord",
    "JobStatus",
    "ReportDamagedError",
    "ReportIdError",
    "ReportNotFoundError",
    "ReportStore",
    "check_report_id",
]

REPORT_ID_PATTERN = re.compile(r"dsocr-[0-9a-f]{16}")
MANIFEST_NAME = "manifest.store.json"
_MANIFEST_FORMAT = 1
_STAGING, _JOBS, _TRASH, _VERSIONS, _LOCKS = ".staging", ".jobs", ".trash", ".versions", ".locks"

JobStatus = Literal["queued", "running", "failed"]


RESOLVE_ATTEMPTS = 8
"""A reader resolves a report's current version again at most this many times when rebuilds keep retiring the one it
read (then: "being replaced; read it again"); it pauses 1 ms more before each retry, so a busy writer can finish."""


def _pause_before(attempt: int) -> None:
    if attempt:
        time.sleep(0.001 * attempt)


class ReportIdError(UserError):
    """A report id that is not of the form ``dsocr-`` + 16 lowercase hex digits."""


class ReportNotFoundError(UserError):
    """No published report (or no such file in it) under this id."""


class ReportDamagedError(LlmPerfOptError):
    """A published folder whose files do not match its manifest (edited or damaged outside the store)."""


def check_report_id(report_id: str) -> str:
    """Return ``report_id`` if it matches ``^dsocr-[0-9a-f]{16}$`` exactly; raise :class:`ReportIdError` otherwise."""
    if not isinstance(report_id, str) or REPORT_ID_PATTERN.fullmatch(report_id) is None:
        shown = repr(report_id)[:60]
        raise ReportIdError(
            f"invalid report id {shown}; expected 'dsocr-' followed by 16 lowercase hex digits "
            "(as returned by POST /analytic/deepseek-ocr/run or `analyze`)"
        )
    return report_id


def _check_member(name: str) -> str:
    """A report file name: a relative POSIX path inside the report folder, not the manifest itself."""
    parts = PurePosixPath(name).parts
    bad = (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or name == MANIFEST_NAME
        or parts[0] in (_STAGING, _JOBS, _TRASH, _VERSIONS, _LOCKS)
    )
    if bad:
        raise ReportIdError(f"invalid report file name {name!r}; expected a relative path like 'plots/roofline.svg'")
    return name


@frozen(kw_only=True)
class JobRecord:
    """The state of a build that has not (yet) published: who owns it, and why it failed if it did."""

    report_id: str
    status: JobStatus
    reason: str | None = None
    owner_pid: int = 0
    request: dict[str, Any] | None = None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem can fsync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _manifest_bytes(report_id: str, files: Mapping[str, bytes]) -> bytes:
    entries = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()}
    doc = {"format": _MANIFEST_FORMAT, "report_id": report_id, "files": dict(sorted(entries.items()))}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


class ReportStore:
    """Reports on disk under ``root``, one folder per ``report_id``, published atomically."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- published reports -------------------------------------------------------------------------

    def report_dir(self, report_id: str) -> Path:
        """The folder of a published report (validated id; the folder may not exist)."""
        return self.root / check_report_id(report_id)

    def exists(self, report_id: str) -> bool:
        """True when a whole report is published under ``report_id``."""
        return (self.report_dir(report_id) / MANIFEST_NAME).is_file()

    def list_reports(self) -> list[str]:
        """Ids of the published reports, sorted."""
        if not self.root.is_dir():
            return []
        found = (p.name for p in self.root.iterdir() if REPORT_ID_PATTERN.fullmatch(p.name))
        return sorted(name for name in found if self.exists(name))

    def manifest(self, report_id: str) -> dict[str, dict[str, Any]]:
        """File name -> ``{"bytes", "sha256"}`` of a published report; :class:`ReportNotFoundError` if none."""
        return self._current_manifest(report_id)[1]

    def _current_manifest(self, report_id: str) -> tuple[Path, dict[str, dict[str, Any]]]:
        """The current version's folder and manifest (resolved again if a rebuild retires it meanwhile)."""
        for attempt in range(RESOLVE_ATTEMPTS):
            _pause_before(attempt)
            folder = self._version(report_id)
            try:
                return folder, self._manifest_in(folder, report_id)
            except ReportNotFoundError:
                if self._version(report_id) == folder:
                    raise
        raise ReportNotFoundError(f"report {report_id!r} is being replaced; read it again")

    def _version(self, report_id: str) -> Path:
        """The folder holding the current version of a report (the symlink resolved once)."""
        return Path(os.path.realpath(self.report_dir(report_id)))

    def _manifest_in(self, folder: Path, report_id: str) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads((folder / MANIFEST_NAME).read_bytes())
        except FileNotFoundError:
            raise ReportNotFoundError(f"no report {report_id!r} in the store") from None
        except ValueError as exc:
            raise ReportDamagedError(f"report {report_id}: unreadable manifest ({exc})") from None
        files = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(files, dict) or doc.get("report_id") != report_id:
            raise ReportDamagedError(f"report {report_id}: manifest does not describe this report")
        return files

    def read(self, report_id: str, name: str) -> bytes:
        """The bytes of one file of a published report, checked against the manifest of the same version."""
        _check_member(name)
        for attempt in range(RESOLVE_ATTEMPTS):  # a rebuild may retire the version between resolving and reading
            _pause_before(attempt)
            folder, manifest = self._current_manifest(report_id)
            entry = manifest.get(name)
            if entry is None:
                raise ReportNotFoundError(f"report {report_id!r} has no file {name!r}")
            try:
                data = (folder / name).read_bytes()
            except FileNotFoundError:
                if self._version(report_id) != folder:
                    continue
                raise ReportDamagedError(f"report {report_id}: {name} is listed but missing") from None
            if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise ReportDamagedError(f"report {report_id}: {name} does not match its manifest")
            return data
        raise ReportNotFoundError(f"report {report_id!r} is being replaced; read it again")

    def read_all(self, report_id: str) -> dict[str, bytes]:
        """Every file of a published report (manifest excluded), each checked."""
        return {name: self.read(report_id, name) for name in sorted(self.manifest(report_id))}

    def published_at(self, report_id: str) -> float | None:
        """When the current version was published (seconds since the epoch), or None when there is none."""
        try:
            return (self._version(report_id) / MANIFEST_NAME).stat().st_mtime
        except FileNotFoundError:
            return None

    def publish(self, report_id: str, files: Mapping[str, bytes], *, replace: bool = False) -> bool:
        """Write ``files`` as report ``report_id`` atomically.

        Returns True when this call published, False when a report was already there and ``replace`` is False
        (the existing one is kept: builds are deterministic, so the first one wins).  With ``replace`` the new
        version takes the old one's place in one rename: readers never see the report missing.
        """
        check_report_id(report_id)
        names = [_check_member(name) for name in files]
        stage = self._new_private_dir(_STAGING, report_id)
        version: Path | None = None
        try:
            for name in names:
                _write_synced(stage / name, files[name])
            _write_synced(stage / MANIFEST_NAME, _manifest_bytes(report_id, files))
            _fsync_dir(stage)
            (self.root / _VERSIONS).mkdir(parents=True, exist_ok=True)
            version = self.root / _VERSIONS / stage.name
            stage.rename(version)
            published = self._link(report_id, version, replace=replace)
            if published:
                version = None
            return published
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if version is not None:
                shutil.rmtree(version, ignore_errors=True)

    def _link(self, report_id: str, version: Path, *, replace: bool) -> bool:
        target = self.root / report_id
        relative = f"{_VERSIONS}/{version.name}"
        if not replace:
            try:
                target.symlink_to(relative)  # atomic "create if absent": the first publisher wins
            except FileExistsError:
                return False
            _fsync_dir(self.root)
            return True
        old = self._current_version(report_id)
        if target.is_dir() and not target.is_symlink():  # a folder published by an older version of the store
            self._hide(report_id)
        link = self.root / _STAGING / f"{report_id}-link.{os.getpid()}.{secrets.token_hex(4)}"
        link.symlink_to(relative)
        link.replace(target)  # one rename(2) over the old symlink
        _fsync_dir(self.root)
        if old is not None and old != version:
            shutil.rmtree(old, ignore_errors=True)
        return True

    def _current_version(self, report_id: str) -> Path | None:
        target = self.root / report_id
        if not target.is_symlink():
            return None
        return self.root / target.readlink()

    def delete(self, report_id: str) -> bool:
        """Remove a published report (atomically hidden first); True if there was one."""
        if not os.path.lexists(self.report_dir(report_id)):
            return False
        old = self._current_version(report_id)
        if not self._hide(report_id):
            return False
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(self.root)
        return True

    def _hide(self, report_id: str) -> bool:
        trash = self._new_private_dir(_TRASH, report_id)
        try:
            (self.root / report_id).replace(trash / "old")
        except FileNotFoundError:
            return False
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return True

    def _new_private_dir(self, kind: str, report_id: str) -> Path:
        base = self.root / kind
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{report_id}.{os.getpid()}.{secrets.token_hex(4)}"
        path.mkdir()
        return path

    # -- one builder per report id, across processes --------------------------------------------------

    def try_lock(self, report_id: str) -> int | None:
        """Take the build lock of ``report_id`` (an ``flock`` on ``.locks/<id>.lock``) without waiting: the file
        descriptor to pass to :meth:`unlock`, or None when another process holds it.  The kernel drops the lock when
        the holder dies, so a crashed server never blocks another."""
        folder = self.root / _LOCKS
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{check_report_id(report_id)}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        """Release a lock taken by :meth:`try_lock`."""
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    # -- build state ---------------------------------------------------------------------------------

    def _job_path(self, report_id: str) -> Path:
        return self.root / _JOBS / f"{check_report_id(report_id)}.json"

    def set_job(self, record: JobRecord) -> None:
        """Record (atomically) the state of a build that has not published yet."""
        path = self._job_path(record.report_id)
        doc = {
            "report_id": record.report_id,
            "status": record.status,
            "reason": record.reason,
            "owner_pid": record.owner_pid or os.getpid(),
            "request": record.request,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        _write_synced(tmp, (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"))
        tmp.replace(path)

    def job(self, report_id: str) -> JobRecord | None:
        """The recorded build state, or None (never built here, or published)."""
        try:
            doc = json.loads(self._job_path(report_id).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        status = doc.get("status")
        if status not in ("queued", "running", "failed"):
            return None
        return JobRecord(
            report_id=report_id,
            status=status,
            reason=doc.get("reason"),
            owner_pid=int(doc.get("owner_pid") or 0),
            request=doc.get("request"),
        )

    def jobs(self) -> list[JobRecord]:
        """Every recorded build state, by report id."""
        records = (self.job(report_id) for report_id in self._job_ids())
        return [record for record in records if record is not None]

    def job_age_s(self, report_id: str) -> float | None:
        """Seconds since the build state of ``report_id`` was last written, or None."""
        try:
            return time.time() - self._job_path(report_id).stat().st_mtime
        except FileNotFoundError:
            return None

    def prune_failed(self, older_than_s: float) -> list[str]:
        """Forget failed builds recorded more than ``older_than_s`` seconds ago; returns their ids."""
        pruned = []
        for record in self.jobs():
            age = self.job_age_s(record.report_id)
            if record.status == "failed" and age is not None and age > older_than_s:
                self.clear_job(record.report_id)
                pruned.append(record.report_id)
        return pruned

    def clear_job(self, report_id: str) -> None:
        """Forget the build state of ``report_id`` (after it published)."""
        with contextlib.suppress(FileNotFoundError):
            self._job_path(report_id).unlink()

    def recover(self) -> list[str]:
        """Tidy up after writers that died: returns the ids whose interrupted builds were marked failed.

        A queued or running record whose owner process is gone (or is this very process, which has not started any
        build yet when it calls this) becomes ``failed`` with the reason; a record whose report did publish is
        dropped; staging and trash folders of dead processes are removed.
        """
        self._remove_dead_private_dirs(_STAGING)
        self._remove_dead_private_dirs(_TRASH)
        self._remove_unlinked_versions()
        self._remove_dead_job_temps()
        failed: list[str] = []
        for report_id in self._job_ids():
            record = self.job(report_id)
            if record is None or self.exists(report_id):
                self.clear_job(report_id)
                continue
            if record.status != "failed" and self._owner_gone(record.owner_pid):
                reason = (
                    f"the build was interrupted while {record.status} (the process building it stopped); "
                    "POST the same request again to rebuild"
                )
                self.set_job(JobRecord(report_id=report_id, status="failed", reason=reason, request=record.request))
                failed.append(report_id)
        return failed

    def _job_ids(self) -> Iterator[str]:
        folder = self.root / _JOBS
        if folder.is_dir():
            for path in sorted(folder.glob("dsocr-*.json")):
                if REPORT_ID_PATTERN.fullmatch(path.stem):
                    yield path.stem

    @staticmethod
    def _owner_gone(pid: int) -> bool:
        return pid == os.getpid() or not pid_alive(pid)

    def _remove_dead_job_temps(self) -> None:
        folder = self.root / _JOBS
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                fields = path.name.split(".")  # .<id>.json.<pid>.<hex>.tmp
                pid = int(fields[3]) if len(fields) == 6 and fields[3].isdigit() else 0
                if self._owner_gone(pid):
                    path.unlink(missing_ok=True)

    def _remove_dead_private_dirs(self, kind: str) -> None:
        folder = self.root / kind
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if self._owner_gone(_owner_pid(path.name)):
                _remove(path)

    def _remove_unlinked_versions(self) -> None:
        """Versions no report points to (left by a publisher that died before linking or tidying up)."""
        folder = self.root / _VERSIONS
        if not folder.is_dir():
            return
        linked = {
            str(path.readlink())
            for path in self.root.iterdir()
            if path.is_symlink() and REPORT_ID_PATTERN.fullmatch(path.name)
        }
        for path in folder.iterdir():
            if f"{_VERSIONS}/{path.name}" not in linked and self._owner_gone(_owner_pid(path.name)):
                _remove(path)


def _owner_pid(name: str) -> int:
    """The pid in a private name ``<id>.<pid>.<random>`` (0 when there is none)."""
    fields = name.split(".")
    return int(fields[1]) if len(fields) == 3 and fields[1].isdigit() else 0


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
