from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llm_perf_opt.store import (
    MANIFEST_NAME,
    JobRecord,
    ReportDamagedError,
    ReportIdError,
    ReportNotFoundError,
    ReportStore,
    check_report_id,
)
from llm_perf_opt.store.store import RESOLVE_ATTEMPTS

RID = "dsocr-0123456789abcdef"
FILES = {"summary.json": b'{"a": 1}\n', "model.json": b"{}\n", "plots/stages.svg": b"<svg/>"}


def test_check_report_id_accepts_exact_format() -> None:
    assert check_report_id(RID) == RID


@pytest.mark.parametrize(
    "bad",
    [
        "dsocr-0123456789ABCDEF",  # upper case
        "dsocr-0123456789abcde",  # 15 digits
        "dsocr-0123456789abcdef0",  # 17 digits
        "dsocr-0123456789abcdef\n",  # trailing newline ($ would accept it)
        "../dsocr-0123456789abcdef",
        "dsocr-0123456789abcdef/../x",
        "..",
        "",
        "/etc/passwd",
    ],
)
def test_check_report_id_rejects_everything_else(bad: str) -> None:
    with pytest.raises(ReportIdError, match="expected 'dsocr-' followed by 16 lowercase hex"):
        check_report_id(bad)


def test_publish_then_read_round_trip(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    assert store.publish(RID, FILES) is True
    assert store.exists(RID)
    assert store.list_reports() == [RID]
    assert store.read_all(RID) == FILES
    manifest = store.manifest(RID)
    assert manifest["summary.json"] == {"bytes": 9, "sha256": hashlib.sha256(b'{"a": 1}\n').hexdigest()}
    # nothing but the report's link, its one version and the (now empty) staging area remains
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", ".versions", RID]
    assert list((tmp_path / ".staging").iterdir()) == []
    assert [p.name for p in (tmp_path / ".versions").iterdir()] == [(tmp_path / RID).readlink().name]


def test_a_reader_gives_up_after_a_bounded_number_of_retired_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReportStore(tmp_path)
    store.publish(RID, {"summary.json": b"0"})
    resolved = itertools.count()
    monkeypatch.setattr(store, "_version", lambda report_id: tmp_path / f"retired-{next(resolved)}")
    with pytest.raises(ReportNotFoundError, match=r"is being replaced; read it again$"):
        store.read(RID, "summary.json")
    assert next(resolved) == 2 * RESOLVE_ATTEMPTS  # each attempt resolves, misses, and resolves again to compare


def test_a_rebuild_never_leaves_the_report_missing(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.publish(RID, {"summary.json": b"0"})
    stop = threading.Event()
    misses: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                store.read(RID, "summary.json")
            except ReportNotFoundError as exc:
                misses.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 60):
            store.publish(RID, {"summary.json": str(n).encode()}, replace=True)
    finally:
        stop.set()
        thread.join()
    assert misses == []
    assert store.read(RID, "summary.json") == b"59"
    assert len(list((tmp_path / ".versions").iterdir())) == 1  # old versions are retired


def test_the_build_lock_is_exclusive_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _LOCKER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert store.try_lock(RID) is None  # held by the other process
    holder.kill()
    holder.wait()
    fd = store.try_lock(RID)  # the kernel released it with the process
    assert fd is not None
    store.unlock(fd)


_LOCKER = """
import sys, time
from llm_perf_opt.store import ReportStore
fd = ReportStore(sys.argv[1]).try_lock("dsocr-0123456789abcdef")
print("locked" if fd is not None else "busy", flush=True)
time.sleep(60)
"""


def test_prune_failed_forgets_only_old_failures(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    other = "dsocr-fedcba9876543210"
    store.set_job(JobRecord(report_id=RID, status="failed", reason="x"))
    store.set_job(JobRecord(report_id=other, status="queued"))
    assert store.prune_failed(3600) == []
    old = time.time() - 7200
    for path in (tmp_path / ".jobs").iterdir():
        os.utime(path, (old, old))
    assert store.prune_failed(3600) == [RID]
    assert [r.report_id for r in store.jobs()] == [other]


def test_publish_is_deterministic(tmp_path: Path) -> None:
    a, b = ReportStore(tmp_path / "a"), ReportStore(tmp_path / "b")
    a.publish(RID, FILES)
    b.publish(RID, dict(reversed(list(FILES.items()))))
    assert (tmp_path / "a" / RID / MANIFEST_NAME).read_bytes() == (tmp_path / "b" / RID / MANIFEST_NAME).read_bytes()


def test_first_publisher_wins_unless_replace(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.publish(RID, FILES)
    assert store.publish(RID, {"summary.json": b"other"}) is False
    assert store.read(RID, "summary.json") == FILES["summary.json"]
    assert store.publish(RID, {"summary.json": b"new"}, replace=True) is True
    assert store.read_all(RID) == {"summary.json": b"new"}


def test_unknown_report_and_file(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    with pytest.raises(ReportNotFoundError):
        store.read(RID, "summary.json")
    store.publish(RID, FILES)
    with pytest.raises(ReportNotFoundError, match=r"no file 'report\.md'"):
        store.read(RID, "report.md")


def test_damaged_file_is_never_served(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.publish(RID, FILES)
    (tmp_path / RID / "summary.json").write_bytes(b'{"a": 2}\n')  # same size, other bytes
    with pytest.raises(ReportDamagedError, match="does not match its manifest"):
        store.read(RID, "summary.json")


def test_folder_without_manifest_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / RID).mkdir()
    (tmp_path / RID / "summary.json").write_bytes(b"{}")
    store = ReportStore(tmp_path)
    assert not store.exists(RID)
    assert store.list_reports() == []


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../b", "a\\b", MANIFEST_NAME, ".jobs/x", ""])
def test_publish_refuses_file_names_outside_the_report(tmp_path: Path, name: str) -> None:
    with pytest.raises(ReportIdError, match="invalid report file name"):
        ReportStore(tmp_path).publish(RID, {name: b"x"})
    assert not (tmp_path / RID).exists()


def test_publish_refuses_bad_ids_before_touching_disk(tmp_path: Path) -> None:
    with pytest.raises(ReportIdError):
        ReportStore(tmp_path / "root").publish("../escape", FILES)
    assert not (tmp_path / "root").exists()


def test_delete(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.publish(RID, FILES)
    assert store.delete(RID) is True
    assert store.delete(RID) is False
    assert not store.exists(RID)


def test_job_records_round_trip_and_clear(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    assert store.job(RID) is None
    store.set_job(JobRecord(report_id=RID, status="running", request={"model_id": "m"}))
    record = store.job(RID)
    assert record == JobRecord(report_id=RID, status="running", owner_pid=os.getpid(), request={"model_id": "m"})
    store.clear_job(RID)
    assert store.job(RID) is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_marks_interrupted_builds_failed_and_removes_leftovers(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    dead = _dead_pid()
    other = "dsocr-fedcba9876543210"
    (tmp_path / ".jobs").mkdir()
    for rid, status in ((RID, "running"), (other, "queued")):
        doc = {"report_id": rid, "status": status, "owner_pid": dead, "reason": None, "request": None}
        (tmp_path / ".jobs" / f"{rid}.json").write_text(json.dumps(doc))
    stale = tmp_path / ".staging" / f"{RID}.{dead}.abcd1234"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_bytes(b"{half")
    live = tmp_path / ".staging" / f"{RID}.{os.getppid()}.abcd1234"  # a live process (our parent) still writing
    live.mkdir()

    assert store.recover() == [RID, other]
    record = store.job(RID)
    assert record is not None and record.status == "failed"
    assert record.reason is not None and "interrupted while running" in record.reason
    assert not stale.exists()
    assert live.exists()
    assert not store.exists(RID)


def test_recover_drops_records_of_reports_that_did_publish(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.set_job(JobRecord(report_id=RID, status="running", owner_pid=_dead_pid()))
    store.publish(RID, FILES)
    assert store.recover() == []
    assert store.job(RID) is None


def test_recover_keeps_builds_of_live_writers(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    store.set_job(JobRecord(report_id=RID, status="running", owner_pid=os.getppid()))
    assert store.recover() == []
    record = store.job(RID)
    assert record is not None and record.status == "running"


_WRITER = """
import sys
from llm_perf_opt.store import ReportStore
store = ReportStore(sys.argv[1])
big = bytes(range(256)) * 4096  # 1 MiB per file, so a kill often lands mid-write
i = 0
while True:
    rid = "dsocr-%016x" % i
    store.publish(rid, {"a.bin": big, "b/c.bin": big + rid.encode(), "summary.json": rid.encode()})
    i += 1
"""


def test_kill_9_during_publish_never_leaves_a_half_written_report(tmp_path: Path) -> None:
    published = 0
    for round_ in range(4):
        root = tmp_path / f"r{round_}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)])
        deadline = time.monotonic() + 10
        while not (root / ".staging").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05 + 0.07 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = ReportStore(root)
        # every folder under a report id is a whole report: the rename publishes all files at once
        for path in root.iterdir():
            if path.name.startswith("dsocr-"):
                assert store.exists(path.name), path
                files = store.read_all(path.name)
                assert files["summary.json"] == path.name.encode()
                assert len(files["a.bin"]) == 256 * 4096
                published += 1
        store.recover()
        assert list((root / ".staging").iterdir()) == []
        linked = {str(p.readlink()) for p in root.iterdir() if p.is_symlink()}
        versions = root / ".versions"
        assert {f".versions/{p.name}" for p in versions.iterdir()} == linked if versions.exists() else not linked
    assert published > 0  # the writer got far enough to publish, so the kills landed among real writes
