"""The service app in process (Starlette's TestClient, real worker processes) with the fake backend."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import service_fakes
from starlette.testclient import TestClient

from llm_perf_opt.contracts import DeepSeekOCRAnalyticModel, DeepSeekOCRAnalyticReportSummary, from_json
from llm_perf_opt.service import create_app, openapi_bytes
from llm_perf_opt.store import JobRecord, ReportStore

RUN = "/analytic/deepseek-ocr/run"
BASE = {"model_id": "deepseek-ai/DeepSeek-OCR", "model_variant": "deepseek-ocr-v1-base"}
OPENAPI_FILE = Path(__file__).resolve().parents[2] / "src" / "llm_perf_opt" / "contracts" / "openapi.yaml"


def _request(tag: str, **extra: Any) -> dict[str, Any]:
    """A valid request, told apart from the others by its ``profile_run_id`` tag (the fake backend's switch)."""
    return {**BASE, "workload_profile_id": "dsocr-standard-v1", "profile_run_id": tag, **extra}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("service_app")
    paths = {"store": root / "store", "log": root / "builds"}
    saved = os.environ.get("SERVICE_FAKES_LOG")
    os.environ["SERVICE_FAKES_LOG"] = str(paths["log"])  # read by the spawned workers
    yield paths
    if saved is None:
        del os.environ["SERVICE_FAKES_LOG"]
    else:
        os.environ["SERVICE_FAKES_LOG"] = saved


@pytest.fixture(scope="module")
def client(env: dict[str, Path]) -> Iterator[TestClient]:
    app = create_app(store_root=env["store"], workers=2, backend=service_fakes.FAKE, max_body_bytes=4096)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _builds(env: dict[str, Path], report_id: str) -> int:
    """How many times the fake builder ran for ``report_id`` (each run leaves one file)."""
    if not env["log"].is_dir():
        return 0
    options = [json.loads(p.read_text()) for p in env["log"].iterdir()]
    return sum(service_fakes.fake_report_id(o) == report_id for o in options)


def _poll(client: TestClient, path: str, *, until: int, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(path)
        if response.status_code == until or time.monotonic() > deadline:
            return response
        assert response.status_code == 409, response.text
        assert response.headers["retry-after"] == "1"
        time.sleep(0.05)


def test_openapi_is_the_shipped_file_byte_for_byte(client: TestClient) -> None:
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.content == OPENAPI_FILE.read_bytes() == openapi_bytes()
    assert response.headers["content-type"].startswith("application/yaml")


def test_health(client: TestClient) -> None:
    doc = client.get("/health").json()
    assert doc["status"] == "ok"
    assert doc["backend"] == "service_fakes"
    assert doc["workers"] == 2
    assert doc["allow_remote_code"] is False


def test_post_poll_get_summary_and_model(client: TestClient, env: dict[str, Path]) -> None:
    body = _request("app-e2e")
    first = client.post(RUN, json=body)
    assert first.status_code == 202
    report_id = first.json()["report_id"]
    assert set(first.json()) == {"report_id", "status", "stage", "queue_position"}
    assert first.json()["status"] in ("queued", "running")
    assert report_id == service_fakes.fake_report_id(
        service_fakes.fake_options(from_json(json.dumps(body), _req()), False)
    )

    summary = _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=200)
    assert summary.status_code == 200
    parsed = from_json(summary.content, DeepSeekOCRAnalyticReportSummary)
    assert parsed.report_id == report_id and parsed.workload_profile_id == "dsocr-standard-v1"
    model = client.get(f"/analytic/deepseek-ocr/{report_id}/model")
    assert model.status_code == 200
    assert from_json(model.content, DeepSeekOCRAnalyticModel).report_id == report_id
    # the bytes served are the bytes stored
    assert summary.content == ReportStore(env["store"]).read(report_id, "summary.json")

    # idempotent: the same request again is answered at once with the stored summary, without a new build
    again = client.post(RUN, json=body)
    assert again.status_code == 200
    assert again.content == summary.content
    assert _builds(env, report_id) == 1


def _req() -> type:
    from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest

    return DeepSeekOCRAnalyticRequest


def test_force_rebuild_builds_again(client: TestClient, env: dict[str, Path]) -> None:
    body = _request("app-force")
    report_id = client.post(RUN, json=body).json()["report_id"]
    assert _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
    forced = client.post(RUN, json={**body, "force_rebuild": True})
    assert forced.status_code == 202
    assert forced.json()["report_id"] == report_id  # force_rebuild does not change the id
    assert _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
    assert _builds(env, report_id) == 2


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ({**_request("x"), "force_rebuild": "yes"}, "$.force_rebuild", "expected bool"),
        ({**BASE}, "$.workload_profile_id", "workload_profile_id"),
        ({**_request("x"), "colour": 1}, "$", "unknown field(s) colour"),
        ({**_request("x"), "page_width": 1.5}, "$.page_width", "expected int"),
        ({**_request("x"), "batch_size": 137774}, "$.batch_size", "1..1024"),
        ({**_request("x"), "routing": "histogram:/etc/passwd"}, "$.routing", "never as a file"),
        ({**_request("x"), "routing": "skewed:1e309"}, "$.routing", "skew out of range"),
        ({**_request("x"), "page_width": 100}, "$.page_width", "page_width 100: set without page_height"),
        ({**_request("x"), "text_only": True, "page_width": 640, "page_height": 640}, "$.page_width", "text-only"),
        ({**_request("x"), "runtime": "vllm", "attention": "eager"}, "$.runtime", 'use runtime "hf-eager"'),
        (
            {**_request("x"), "routing": "histogram", "routing_histogram": {"1": [100] * 5 + [0] * 59}},
            "$.routing_histogram.1",
            "layer 1 has 5 experts with counts; top-6 routing needs at least 6",
        ),
        ([1, 2], "$", "expected object"),
        ({**BASE, "workload_profile_id": "unknown-workload"}, "$.workload_profile_id", "unknown workload profile"),
        (
            {**_request("x"), "model_variant": "hf:deepseek-ai/DeepSeek-OCR@main"},
            "$.model_variant",
            "--allow-remote-code",
        ),
        (
            {**_request("x"), "model_variant": "hf-snapshot:/tmp/x"},
            "$.model_variant",
            "--allow-remote-code",
        ),
    ],
)
def test_invalid_requests_get_422_naming_the_field(client: TestClient, body: Any, path: str, words: str) -> None:
    response = client.post(RUN, json=body)
    assert response.status_code == 422, response.text
    doc = response.json()
    assert set(doc) == {"error", "path"}
    assert doc["path"] == path
    assert words in doc["error"]


def test_body_that_is_not_json_gets_422(client: TestClient) -> None:
    response = client.post(RUN, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["path"] == "$"
    assert "invalid JSON" in response.json()["error"]


def test_body_over_the_limit_gets_413(client: TestClient) -> None:
    big = _request("x" * 5000)  # the fixture's limit is 4096 bytes
    response = client.post(RUN, json=big)
    assert response.status_code == 413
    assert "over 4096 bytes" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield json.dumps(big).encode()

    assert client.post(RUN, content=chunks()).status_code == 413


@pytest.mark.parametrize(
    "report_id",
    [
        "..",
        "..%2F..%2Fetc%2Fpasswd",
        "dsocr-0123456789ABCDEF",
        "dsocr-0123456789abcdef0",
        "dsocr-0123456789abcde",
        ".jobs",
        "dsocr-0123456789abcdef%0A",
    ],
)
def test_malformed_or_traversal_ids_are_refused(client: TestClient, report_id: str) -> None:
    for part in ("summary", "model"):
        response = client.get(f"/analytic/deepseek-ocr/{report_id}/{part}")
        assert response.status_code == 404
        assert set(response.json()) == {"error", "path"}


def test_well_formed_unknown_id_is_404_naming_report_id(client: TestClient) -> None:
    response = client.get("/analytic/deepseek-ocr/dsocr-0000000000000000/summary")
    assert response.status_code == 404
    assert response.json()["path"] == "report_id"
    assert "POST its request" in response.json()["error"]


def test_failed_build_gives_500_with_reason_and_a_new_post_retries(client: TestClient, env: dict[str, Path]) -> None:
    body = _request("fail-app")
    report_id = client.post(RUN, json=body).json()["report_id"]
    failed = _poll(client, f"/analytic/deepseek-ocr/{report_id}/model", until=500)
    assert failed.status_code == 500
    assert failed.json()["path"] == "report_id"
    assert "'fail-app' asked this fake build to fail" in failed.json()["error"]
    assert client.post(RUN, json=body).status_code == 202  # a failed report is not "existing": it is built again
    assert _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=500).status_code == 500
    assert _builds(env, report_id) == 2


def test_worker_crash_fails_the_build_and_the_pool_recovers(client: TestClient) -> None:
    crashed = client.post(RUN, json=_request("crash-app")).json()["report_id"]
    response = _poll(client, f"/analytic/deepseek-ocr/{crashed}/summary", until=500)
    assert response.status_code == 500
    assert "worker process building this report died" in response.json()["error"]
    healthy = client.post(RUN, json=_request("app-after-crash")).json()["report_id"]
    assert _poll(client, f"/analytic/deepseek-ocr/{healthy}/summary", until=200).status_code == 200


def test_unknown_path_and_method_get_json_errors(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "path"}
    wrong = client.get(RUN)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_remote_code_allowed_only_with_the_flag(tmp_path: Path) -> None:
    roots = tmp_path / "snapshots"
    (roots / "ocr").mkdir(parents=True)
    app = create_app(
        store_root=tmp_path / "store",
        workers=1,
        backend=service_fakes.FAKE,
        allow_remote_code=True,
        snapshot_roots=[roots],
    )
    with TestClient(app) as allowed:
        body = _request("w", model_variant=f"hf-snapshot:{roots / 'ocr'}")
        response = allowed.post(RUN, json=body)
        assert response.status_code == 202
        outside = allowed.post(RUN, json=_request("w", model_variant=f"hf-snapshot:{tmp_path}"))
        assert outside.status_code == 422 and "snapshot root" in outside.json()["error"]
        assert allowed.get("/health").json()["allow_remote_code"] is True


def test_build_by_another_process_on_the_same_store_is_not_ready(client: TestClient, env: dict[str, Path]) -> None:
    report_id = "dsocr-00000000000000aa"
    ReportStore(env["store"]).set_job(JobRecord(report_id=report_id, status="running", owner_pid=os.getpid()))
    response = client.get(f"/analytic/deepseek-ocr/{report_id}/summary")
    assert response.status_code == 409
    assert response.json() == {"report_id": report_id, "status": "running", "stage": None, "queue_position": None}


def test_damaged_report_is_never_served_and_a_post_rebuilds_it(client: TestClient, env: dict[str, Path]) -> None:
    body = _request("app-damaged")
    report_id = client.post(RUN, json=body).json()["report_id"]
    assert _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
    summary_file = env["store"] / report_id / "summary.json"
    summary_file.write_bytes(summary_file.read_bytes().replace(b"fake backend", b"FAKE BACKEND"))
    damaged = client.get(f"/analytic/deepseek-ocr/{report_id}/summary")
    assert damaged.status_code == 500
    assert "does not match its manifest" in damaged.json()["error"]
    assert client.post(RUN, json=body).status_code == 202  # not reused: rebuilt in place
    repaired = _poll(client, f"/analytic/deepseek-ocr/{report_id}/summary", until=200)
    assert b"fake backend" in repaired.content


def test_clean_stop_records_unfinished_builds_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_FAKES_DELAY_S", "30")  # inherited by the worker spawned below
    app = create_app(store_root=tmp_path, workers=1, backend=service_fakes.FAKE)
    started = time.monotonic()
    with TestClient(app) as slow:
        report_id = slow.post(RUN, json=_request("app-stop")).json()["report_id"]
        queued = slow.post(RUN, json=_request("app-stop-2")).json()["report_id"]
        waiting = slow.get(f"/analytic/deepseek-ocr/{queued}/model").json()
        assert (waiting["status"], waiting["queue_position"]) == ("queued", 1)  # one worker, busy
    assert time.monotonic() - started < 15  # the 30 s build was abandoned, not awaited
    for rid in (report_id, queued):
        record = ReportStore(tmp_path).job(rid)
        assert record is not None and record.status == "failed"
        assert record.reason is not None and "server stopped" in record.reason


def test_backend_warm_up_runs_in_the_server_and_in_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm = tmp_path / "warm"
    monkeypatch.setenv("SERVICE_FAKES_WARM", str(warm))
    app = create_app(store_root=tmp_path / "store", workers=2, backend=service_fakes.WARMED)
    with TestClient(app):
        deadline = time.monotonic() + 20
        while len(list(warm.glob("*"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    pids = {int(p.name) for p in warm.iterdir()}
    assert os.getpid() in pids  # the server process
    assert len(pids - {os.getpid()}) == 2  # one per worker process


def test_first_build_on_a_fresh_store_is_queued_not_waiting_and_health_counts_it(tmp_path: Path) -> None:
    app = create_app(store_root=tmp_path / "store", workers=1, backend=service_fakes.FAKE)
    with TestClient(app) as fresh:
        first = fresh.post(RUN, json=_request("fresh-1")).json()
        assert first["stage"] != "waiting for another server building the same report"  # no other server exists
        assert (first["status"], first["stage"], first["queue_position"]) in (
            ("queued", "queued", 1),
            ("running", "building", None),
        )
        second = fresh.post(RUN, json=_request("fresh-2")).json()
        joined = fresh.post(RUN, json=_request("fresh-2")).json()  # joins the build queued above: not a new one
        assert joined["report_id"] == second["report_id"]
        for report_id in (first["report_id"], second["report_id"]):
            assert _poll(fresh, f"/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
        assert fresh.get("/health").json()["totals"] == {"submitted": 2, "published": 2, "failed": 0}


def test_a_build_whose_lock_another_server_holds_says_it_waits(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "store")
    app = create_app(store_root=tmp_path / "store", workers=1, backend=service_fakes.FAKE)
    with TestClient(app) as waiting:
        report_id = service_fakes.fake_report_id(
            service_fakes.fake_options(from_json(json.dumps(_request("held")), _req()), False)
        )
        fd = store.try_lock(report_id)  # another open file: flock conflicts as with another server
        assert fd is not None
        try:
            waiting.post(RUN, json=_request("held"))
            deadline = time.monotonic() + 10
            doc = waiting.get(f"/analytic/deepseek-ocr/{report_id}/summary").json()
            while doc["stage"] != "waiting for another server building the same report":
                assert time.monotonic() < deadline, doc
                time.sleep(0.05)
                doc = waiting.get(f"/analytic/deepseek-ocr/{report_id}/summary").json()
            assert (doc["status"], doc["queue_position"]) == ("queued", None)
        finally:
            store.unlock(fd)
        assert _poll(waiting, f"/analytic/deepseek-ocr/{report_id}/summary", until=200).status_code == 200
