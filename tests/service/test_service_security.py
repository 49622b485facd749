"""The attacks of issue 16 replayed against the real server (``llm-perf-opt serve`` in a subprocess, fake builds).

Every client mistake is a 4xx answered at once, no file outside the store is opened on a client's word (a canary's
access time and content), no error body holds a traceback, a C++ frame or a server path, builds are bounded in time
and memory, a store that cannot record a job gives 503, SIGTERM stops the server in seconds, and two servers on one
store build a report once.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service_server import BASE, RUN, Server, _builds, _poll, _request, _wait_for

SECRET = "CANARY-ghp_0123456789SECRET"
FRAME_WORDS = ("Traceback", 'File "', "frame #", "0x7f00deadbeef", "/usr/lib/secret", "site-packages")


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("canary")
    path = folder / "secret.json"
    path.write_text(json.dumps({"1": [1] * 64, "token": SECRET}))
    stat = path.stat()
    os.utime(path, (stat.st_mtime - 3600, stat.st_mtime))  # atime before mtime: any read moves it (relatime)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("security")
    running = Server(root / "store", log=root / "builds", extra=("--header-timeout-s", "1"))
    yield running, root / "builds"
    running.stop()


def _assert_clean(response: httpx.Response) -> dict[str, Any]:
    doc: dict[str, Any] = response.json()
    assert set(doc) == {"error", "path"}, doc
    for word in (SECRET, *FRAME_WORDS):
        assert word not in response.text, (word, response.text)
    assert "\n" not in doc["error"]
    return doc


def _hostile_values(canary: Path, fifo: Path) -> list[str]:
    return [
        str(canary),
        f"histogram:{canary}",
        f"histogram:{fifo}",
        "histogram:/dev/zero",
        "/dev/zero",
        str(fifo),
        f"hf-snapshot:{canary.parent}",
        "../../../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        f"file://{canary}",
    ]


STRING_FIELDS = ("model_id", "model_variant", "workload_profile_id", "profile_run_id", "device", "mode", "dtype")


def test_file_paths_in_every_string_field_are_refused_unopened(
    server: tuple[Server, Path], canary: Path, tmp_path: Path
) -> None:
    srv, log = server
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading would block a worker forever
    before = canary.stat().st_atime_ns
    builds_before = len(_builds(log))
    for field in (*STRING_FIELDS, "routing"):
        for value in _hostile_values(canary, fifo):
            response = httpx.post(srv.url + RUN, json={**_request("x"), field: value}, timeout=5)
            assert response.status_code == 422, (field, value, response.text)
            assert _assert_clean(response)["path"] == f"$.{field}"
    for key in (str(canary), "../1", "1" * 5000):
        body = {**_request("x"), "routing": "histogram", "routing_histogram": {key: [1] * 64}}
        response = httpx.post(srv.url + RUN, json=body, timeout=5)
        assert response.status_code in (413, 422), response.text
        _assert_clean(response)
    assert canary.stat().st_atime_ns == before  # never opened
    assert len(_builds(log)) == builds_before  # nothing was queued


@pytest.mark.parametrize(
    "raw",
    [
        b'{"batch_size": 1e12}',
        b'{"batch_size": 137774}',
        b'{"batch_size": 0}',
        b'{"batch_size": -1}',
        b'{"max_new_tokens": 9223372036854775808}',
        b'{"max_new_tokens": 99999999999999999999999999999999999999}',
        b'{"prompt_tokens": 1000000000000}',
        b'{"prompt_tokens": 8000}',
        b'{"max_new_tokens": NaN}',
        b'{"page_width": Infinity, "page_height": 1}',
        b'{"page_width": 1e400, "page_height": 1}',
        b'{"routing": "skewed:nan"}',
        b'{"routing": "skewed:inf"}',
        b'{"routing": "skewed:1e308"}',
    ],
)
def test_huge_and_non_finite_numbers_are_422_at_once(server: tuple[Server, Path], raw: bytes) -> None:
    srv, _ = server
    extra = json.loads(raw.decode(), parse_constant=lambda _: None) if b"NaN" not in raw else {}
    body = json.dumps(_request("x")).encode()[:-1] + b", " + raw[1:]
    started = time.monotonic()
    response = httpx.post(srv.url + RUN, content=body, headers={"content-type": "application/json"}, timeout=5)
    assert response.status_code == 422, (raw, response.text)
    assert time.monotonic() - started < 2
    path = _assert_clean(response)["path"]
    assert path == "$" or path.lstrip("$.") in {*extra, "max_new_tokens", "routing", "page_width"}


def test_deep_nesting_and_oversized_bodies(server: tuple[Server, Path]) -> None:
    srv, _ = server
    for body, expected in ((b"[" * 60_000, 422), (b"[" * 70_000, 413), (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 422)):
        response = httpx.post(srv.url + RUN, content=body, headers={"content-type": "application/json"}, timeout=5)
        assert response.status_code == expected, response.text[:200]
        _assert_clean(response)
    nested = {**_request("x"), "routing": "histogram", "routing_histogram": {"1": [[[[[[[[[1]]]]]]]]]}}
    response = httpx.post(srv.url + RUN, json=nested, timeout=5)
    assert response.status_code == 422
    _assert_clean(response)


def test_long_ids_and_traversal_over_the_wire(server: tuple[Server, Path]) -> None:
    srv, _ = server
    ids = ["x" * 8000, "..%2F..%2Fetc%2Fpasswd", "dsocr-..", "%2e%2e", "dsocr-0123456789abcdef%00", ".versions"]
    for raw in ids:
        for method, suffix in (("GET", "/summary"), ("GET", "/model"), ("DELETE", "")):
            response = httpx.request(method, f"{srv.url}/analytic/deepseek-ocr/{raw}{suffix}", timeout=5)
            assert response.status_code == 404, (method, raw, response.status_code)
            _assert_clean(response)
    for query in ("offset=-1", "limit=0", "limit=100000", "offset=1e9", "limit=abc"):
        response = httpx.get(f"{srv.url}/analytic/deepseek-ocr/reports?{query}", timeout=5)
        assert response.status_code == 422, query
        _assert_clean(response)


def test_build_errors_reach_the_client_without_frames_or_paths(server: tuple[Server, Path]) -> None:
    srv, _ = server
    for tag, words in (("trace-1", "internal error (RuntimeError)"), ("fail-1", "asked this fake build to fail")):
        report_id = httpx.post(srv.url + RUN, json=_request(tag), timeout=5).json()["report_id"]
        failed = _poll(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", until=500)
        assert failed.status_code == 500
        assert words in _assert_clean(failed)["error"]
        listed = httpx.get(f"{srv.url}/analytic/deepseek-ocr/reports?limit=200", timeout=5).json()
        (entry,) = [e for e in listed["reports"] if e["report_id"] == report_id]
        assert entry["status"] == "failed" and "/usr/lib" not in (entry["reason"] or "")
    assert "0x7f00deadbeef" in srv.log_text() or "RuntimeError" in srv.log_text()  # the details stay server-side


def test_slow_headers_are_cut_off(server: tuple[Server, Path]) -> None:
    srv, _ = server
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        assert sock.recv(1024) == b""  # the server closed the connection
        assert time.monotonic() - started < 5
    assert httpx.get(srv.url + "/health", timeout=5).status_code == 200


def test_list_and_delete(server: tuple[Server, Path]) -> None:
    srv, _ = server
    report_id = httpx.post(srv.url + RUN, json=_request("listed"), timeout=5).json()["report_id"]
    assert _poll(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
    page = httpx.get(f"{srv.url}/analytic/deepseek-ocr/reports?limit=200", timeout=5).json()
    assert {"report_id": report_id, "status": "published", "reason": None} in page["reports"]
    assert page["total"] >= 1 and page["offset"] == 0 and page["limit"] == 200
    assert [e["report_id"] for e in page["reports"]] == sorted(e["report_id"] for e in page["reports"])
    one = httpx.get(f"{srv.url}/analytic/deepseek-ocr/reports?limit=1&offset=0", timeout=5).json()
    assert len(one["reports"]) == 1 and one["total"] == page["total"]
    assert httpx.delete(f"{srv.url}/analytic/deepseek-ocr/{report_id}", timeout=5).status_code == 204
    assert httpx.get(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", timeout=5).status_code == 404
    assert httpx.delete(f"{srv.url}/analytic/deepseek-ocr/{report_id}", timeout=5).status_code == 404


def test_bearer_token_and_cors(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    extra = ("--token-file", str(token_file), "--cors-origin", "https://dash.example.org")
    srv = Server(tmp_path / "store", extra=extra)
    try:
        assert httpx.get(srv.url + "/health", timeout=5).status_code == 200  # open routes
        assert httpx.get(srv.url + "/openapi.yaml", timeout=5).status_code == 200
        refused = httpx.post(srv.url + RUN, json=_request("auth"), timeout=5)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        _assert_clean(refused)
        wrong = {"authorization": "Bearer nope"}
        assert httpx.get(srv.url + "/analytic/deepseek-ocr/reports", headers=wrong, timeout=5).status_code == 401
        good = {"authorization": "Bearer s3cret-token-0123456789"}
        assert httpx.post(srv.url + RUN, json=_request("auth"), headers=good, timeout=5).status_code == 202
        preflight = {"origin": "https://dash.example.org", "access-control-request-method": "POST"}
        answer = httpx.options(srv.url + RUN, headers=preflight, timeout=5)
        assert answer.headers.get("access-control-allow-origin") == "https://dash.example.org"
        other = httpx.options(srv.url + RUN, headers={**preflight, "origin": "https://evil.example"}, timeout=5)
        assert "access-control-allow-origin" not in other.headers
    finally:
        srv.stop()


def test_build_timeout_and_memory_ceiling_fail_the_build_and_replace_the_worker(tmp_path: Path) -> None:
    extra = ("--build-timeout-s", "8", "--build-memory-mb", "1024")
    srv = Server(tmp_path / "store", log=tmp_path / "builds", extra=extra)
    try:
        cases = (("sleep-1", "longer than the server's limit of 8 s"), ("hog-1", "more memory than"))
        for tag, words in cases:
            report_id = httpx.post(srv.url + RUN, json=_request(tag), timeout=5).json()["report_id"]
            failed = _poll(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", until=500, timeout_s=30)
            assert failed.status_code == 500, failed.text
            assert words in _assert_clean(failed)["error"]
        sleeper = {int(p.name.split("-")[0]) for p in (tmp_path / "builds").iterdir()}
        # both workers still build: the timed-out one was replaced
        ids = [httpx.post(srv.url + RUN, json=_request(f"after-{n}"), timeout=5).json()["report_id"] for n in range(3)]
        for report_id in ids:
            assert _poll(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
        assert "event=worker_replaced" in srv.log_text()
        for pid in sleeper:  # the timed-out worker is gone, not left running
            _wait_for(lambda p=pid: not Path(f"/proc/{p}").exists() or _zombie(p))
    finally:
        srv.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


def test_a_store_that_cannot_record_the_job_gives_503_and_queues_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    srv = Server(store, log=tmp_path / "builds")
    try:
        (store / ".jobs").mkdir(exist_ok=True)
        (store / ".jobs").rmdir()
        (store / ".jobs").write_text("not a folder")  # every job record write now fails
        response = httpx.post(srv.url + RUN, json=_request("no-store"), timeout=5)
        assert response.status_code == 503, response.text
        assert "store cannot be written" in _assert_clean(response)["error"]
        assert "retry-after" in response.headers
        time.sleep(0.5)
        assert _builds(tmp_path / "builds") == []
        assert httpx.get(srv.url + "/health", timeout=5).json()["builds"] == {"queued": 0, "running": 0}
    finally:
        srv.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_in_seconds_and_marks_builds_interrupted(tmp_path: Path, signum: int) -> None:
    store, log = tmp_path / "store", tmp_path / "builds"
    srv = Server(store, log=log)
    ids = [httpx.post(srv.url + RUN, json=_request(f"sleep-{n}"), timeout=5).json()["report_id"] for n in range(3)]
    _wait_for(lambda: len(_builds(log)) == 2)  # two running (two workers), one queued
    workers = {int(p.name.split("-")[0]) for p in log.iterdir()}
    started = time.monotonic()
    srv.proc.send_signal(signum)
    srv.proc.wait(timeout=10)
    assert time.monotonic() - started < 8
    text = srv.log_text()
    assert "leaked semaphore" not in text and "Traceback" not in text, text
    for pid in workers:
        _wait_for(lambda p=pid: not Path(f"/proc/{p}").exists() or _zombie(p), timeout_s=5)
    from llm_perf_opt.store import ReportStore

    for report_id in ids:
        record = ReportStore(store).job(report_id)
        assert record is not None and record.status == "failed"
        assert record.reason is not None and "interrupted" in record.reason
    srv.stderr.close()


def test_two_servers_on_one_store_build_once_and_rebuilds_are_never_missing(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "builds"
    first = Server(store, log=log, delay_s=1.0)
    second = Server(store, log=log, delay_s=1.0)
    try:
        body = _request("shared")
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda s: httpx.post(s.url + RUN, json=body, timeout=10), (first, second)))
        assert {a.status_code for a in answers} <= {200, 202}
        report_id = answers[0].json()["report_id"]
        for srv in (first, second):
            assert _poll(f"{srv.url}/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
        assert sum(b["profile_run_id"] == "shared" for b in _builds(log)) == 1

        stop = threading.Event()
        seen: list[int] = []

        def read() -> None:
            while not stop.is_set():
                seen.append(httpx.get(f"{second.url}/analytic/deepseek-ocr/{report_id}/model", timeout=5).status_code)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            forced = httpx.post(first.url + RUN, json={**body, "force_rebuild": True}, timeout=5)
            assert forced.status_code == 202
            _wait_for(lambda: sum(b["profile_run_id"] == "shared" for b in _builds(log)) == 2)
            assert _poll(f"{first.url}/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
        finally:
            stop.set()
            reader.join()
        assert 404 not in seen and 500 not in seen, sorted(set(seen))
    finally:
        first.stop()
        second.stop()


def test_request_base_is_what_the_server_accepts(server: tuple[Server, Path]) -> None:
    srv, _ = server
    assert BASE["model_id"] == "deepseek-ai/DeepSeek-OCR"
    response = httpx.post(srv.url + RUN, json=_request("base-ok"), timeout=5)
    assert response.status_code == 202, response.text
    doc = response.json()
    assert doc["stage"] in ("queued", "building", "waiting for another server building the same report", None)
