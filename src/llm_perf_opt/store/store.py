"""The on-disk report store shared by ``analyze --store`` and the HTTP service.

Layout under a root folder::

    <root>/<report_id>/...           a published report: every file complete, plus MANIFEST_NAME
    <root>/.staging/<id>.<pid>.<r>/  a report being written (never read)
    <root>/.jobs/<report_id>.json    the state of a build that has not published (queued, running, failed)
    <root>/.trash/<id>.<r>/          an old version on its way out during a replace

A report is written into a staging folder, each file fsynced, the manifest (size and SHA-256 of every file) last,
and the folder is then renamed into place: a reader sees a whole report or none.  Reads check the manifest, so a
damaged folder is reported as damaged, never served.  ``report_id`` is checked against its exact format before it
touches a path, which rules out traversal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from attrs import frozen

from llm_perf_opt.errors import LlmPerfOptError, UserError

__all__ = [
    "MANIFEST_NAME",
    "REPORT_ID_PATTERN",
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
_STAGING, _JOBS, _TRASH = ".staging", ".jobs", ".trash"

JobStatus = Literal["queued", "running", "failed"]


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
        or parts[0] in (_STAGING, _JOBS, _TRASH)
    )
    if bad:
        raise ReportIdError(f"invalid report file name {name!r}; expected a relative path like 'plots/stages.png'")
    return name


@frozen(kw_only=True)
class JobRecord:
    """The state of a build that has not (yet) published: who owns it, and why it failed if it did."""

    report_id: str
    status: JobStatus
    reason: str | None = None
    owner_pid: int = 0
    request: dict[str, Any] | None = None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        path = self.report_dir(report_id) / MANIFEST_NAME
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise ReportNotFoundError(f"no report {report_id!r} in store {str(self.root)!r}") from None
        except ValueError as exc:
            raise ReportDamagedError(f"report {report_id}: unreadable manifest ({exc})") from None
        files = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(files, dict) or doc.get("report_id") != report_id:
            raise ReportDamagedError(f"report {report_id}: manifest does not describe this report")
        return files

    def read(self, report_id: str, name: str) -> bytes:
        """The bytes of one file of a published report, checked against the manifest."""
        entry = self.manifest(report_id).get(_check_member(name))
        if entry is None:
            raise ReportNotFoundError(f"report {report_id!r} has no file {name!r}")
        try:
            data = (self.report_dir(report_id) / name).read_bytes()
        except FileNotFoundError:
            raise ReportDamagedError(f"report {report_id}: {name} is listed but missing") from None
        if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ReportDamagedError(f"report {report_id}: {name} does not match its manifest")
        return data

    def read_all(self, report_id: str) -> dict[str, bytes]:
        """Every file of a published report (manifest excluded), each checked."""
        return {name: self.read(report_id, name) for name in sorted(self.manifest(report_id))}

    def publish(self, report_id: str, files: Mapping[str, bytes], *, replace: bool = False) -> bool:
        """Write ``files`` as report ``report_id`` atomically.

        Returns True when this call published, False when a report was already there and ``replace`` is False
        (the existing one is kept: builds are deterministic, so the first one wins).
        """
        check_report_id(report_id)
        names = [_check_member(name) for name in files]
        stage = self._new_private_dir(_STAGING, report_id)
        try:
            for name in names:
                _write_synced(stage / name, files[name])
            _write_synced(stage / MANIFEST_NAME, _manifest_bytes(report_id, files))
            _fsync_dir(stage)
            return self._move_into_place(stage, report_id, replace=replace)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def delete(self, report_id: str) -> bool:
        """Remove a published report (atomically hidden first); True if there was one."""
        target = self.report_dir(report_id)
        if not target.exists():
            return False
        trash = self._new_private_dir(_TRASH, report_id)
        try:
            target.replace(trash / "old")
        except FileNotFoundError:
            return False
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return True

    def _move_into_place(self, stage: Path, report_id: str, *, replace: bool) -> bool:
        target = self.root / report_id
        for _attempt in range(3):
            if replace:
                self.delete(report_id)
            try:
                stage.rename(target)  # atomic; fails when another writer already published this id
            except OSError:
                if not target.is_dir():
                    raise
                if not replace:
                    return False
                continue  # another writer slipped in between delete and rename: replace theirs
            _fsync_dir(self.root)
            return True
        raise OSError(f"could not publish report {report_id}: other writers keep replacing it")

    def _new_private_dir(self, kind: str, report_id: str) -> Path:
        base = self.root / kind
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{report_id}.{os.getpid()}.{secrets.token_hex(4)}"
        path.mkdir()
        return path

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
        return pid == os.getpid() or not _pid_alive(pid)

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
            fields = path.name.split(".")
            pid = int(fields[1]) if len(fields) == 3 and fields[1].isdigit() else 0
            if self._owner_gone(pid):
                shutil.rmtree(path, ignore_errors=True)
