"""A batch basis kept in the background: started once per new shapes, by analyze and the service only, and what
it keeps derives another batch as the foreground basis does."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from llm_perf_opt.analysis import pipeline, prepare, trace_step
from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.analysis.trace_step import analysis_key_parts, shapes_key, traced
from llm_perf_opt.cli import cli
from llm_perf_opt.contracts.converter import converter
from llm_perf_opt.report import files as report_files_module
from llm_perf_opt.report.files import build_report_files
from llm_perf_opt.service.backend import pipeline_backend
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import CACHE_DIR_ENV, TraceCache, trace_key
from llm_perf_opt.tracer.batch_fit import EXTRAPOLATE_FROM
from llm_perf_opt.workloads import RoutingModel, Workload

# the tiny model under skewed routing keeps a basis (from batch 9 on, and batch 1, 2, 3, 4 below it)
TINY = AnalysisOptions(
    model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, routing="skewed:1.2", batch_size=1
)
TINY_ARGS = [
    "analyze",
    "--model",
    "deepseek-ocr-v1-tiny",
    "--workload",
    "dsocr-tiny-v1",
    "--max-new-tokens",
    "4",
    "--routing",
    "skewed:1.2",
    "--quiet",
]


class _Started:
    """Stands in for ``subprocess.Popen``: records the starts (and the request each queued) instead of starting a
    process."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.envs: list[dict[str, str]] = []
        self.after: list[str] = []
        self.pid = 4242

    def __call__(self, argv: list[str], **kwargs: Any) -> _Started:
        assert argv[1:3] == ["-m", "llm_perf_opt.analysis.prepare"]
        assert argv[3] == str(TraceCache().queue)
        self.after.append(argv[4])  # the process it waits for ("": none)
        assert kwargs["start_new_session"] and kwargs["stdout"] == subprocess.DEVNULL
        queued = sorted(Path(argv[3]).glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        self.requests.append(json.loads(queued[-1].read_text()))
        self.envs.append(kwargs["env"])
        return self

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> _Started:
    """Background starts allowed, and recorded rather than run."""
    monkeypatch.delenv(prepare.PREPARE_ENV)
    fake = _Started()
    monkeypatch.setattr(prepare.subprocess, "Popen", fake)
    monkeypatch.setattr(prepare, "_may_fork", lambda: False)  # never fork the test process (tested on its own)
    return fake


def test_only_the_first_trace_of_new_shapes_starts_one(started: _Started) -> None:
    run_analysis(TINY, prepare_batches=True)
    assert len(started.requests) == 1
    (request,) = started.requests
    assert request["model"] == "deepseek-ocr-v1-tiny" and request["attention"] == TINY.attention
    assert converter.structure(request["routing"], RoutingModel) == RoutingModel.skewed(1.2)
    workload = converter.structure(request["workload"], Workload)
    assert (workload.batch_size, workload.max_new_tokens) == (1, 4)
    assert request["cache"] == str(TraceCache().root)
    assert started.envs[0][prepare.PREPARE_ENV] == "0"  # the process itself starts none
    assert started.after == [str(os.getpid())]  # it works the queue once this process (a command) has exited
    run_analysis(TINY, prepare_batches=True)  # a cache hit
    run_analysis(attrs.evolve(TINY, batch_size=3), prepare_batches=True)  # traced, but the shapes were seen
    run_analysis(attrs.evolve(TINY, max_new_tokens=9), prepare_batches=True)  # derived from the decode basis
    assert len(started.requests) == 1


def test_none_starts_without_the_cache_when_turned_off_or_for_a_library_caller(
    started: _Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_analysis(TINY, prepare_batches=True, use_cache=False)
    run_analysis(TINY)  # prepare_batches defaults to off (the service, compare, library callers)
    assert started.requests == []
    monkeypatch.setenv(prepare.PREPARE_ENV, "0")
    run_analysis(attrs.evolve(TINY, batch_size=2), prepare_batches=True)
    assert started.requests == []


def test_a_service_build_starts_one_at_once(started: _Started) -> None:
    # the service's build workers live on: a process waiting for one to exit would wait for good (here: not forked)
    files = build_report_files(TINY, prepare_batches=True)
    assert "report.md" in files
    assert len(started.requests) == 1 and started.after == [""]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc")
def test_a_service_build_forks_one_that_it_reaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prepare.PREPARE_ENV)
    monkeypatch.setattr(prepare, "_may_fork", lambda: True)  # a second core or not: fork
    said: list[str] = []
    build_report_files(TINY, prepare_batches=True, progress=said.append)
    (line,) = [line for line in said if "keeping a batch basis of these shapes in the background" in line]
    pid = int(line.rsplit("process ", 1)[1].rstrip(")"))
    assert gc.get_freeze_count() == 0  # this process goes on: its collector sees its objects again
    deadline = time.monotonic() + 300
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()  # ended and reaped by this process (no zombie)
    assert TraceCache().info().batch_bases == 1
    derived = run_analysis(attrs.evolve(TINY, batch_size=300))
    assert "language derived at batch 300 from batch" in derived.trace.batch_note


def test_the_service_backend_keeps_batch_bases(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def build(options: Any, **kwargs: Any) -> dict[str, bytes]:
        seen.update(kwargs)
        return {}

    monkeypatch.setattr(report_files_module, "build_report_files", build)
    pipeline_backend().build(TINY)
    assert seen == {"prepare_batches": True}


def test_the_command_line_analyze_starts_one_and_no_cache_does_not(started: _Started, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, [*TINY_ARGS, "--no-cache", "--out", str(tmp_path / "a")]).exit_code == 0
    assert started.requests == []
    assert CliRunner().invoke(cli, [*TINY_ARGS, "--out", str(tmp_path / "b")]).exit_code == 0
    assert len(started.requests) == 1


def test_only_builtin_v1_and_ocr2_sources_get_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = resolve_model_source("deepseek-ocr-v1-tiny")
    workload = Workload.create(mode="tiny", page=(512, 512), config=v1.config)
    kwargs: dict[str, Any] = {"attention": "flash", "routing": RoutingModel.balanced(), "cache": TraceCache()}
    monkeypatch.delenv(prepare.PREPARE_ENV)
    assert prepare.prepare_request(v1, workload, **kwargs) is not None
    ocr2 = resolve_model_source("deepseek-ocr-2")  # its source names its MoE layers: a basis of every stage
    assert prepare.prepare_request(ocr2, workload, **kwargs) is not None
    # remote code: its experts are dispatched by adapters no basis reads
    remote = SimpleNamespace(kind="upstream-v1", name="hf-snapshot:/x")
    assert prepare.prepare_request(remote, workload, **kwargs) is None


def _start_tiny_basis(workload: Any, *, after_this_process: bool = True) -> prepare.Background | None:
    """Queue the basis of ``TINY``'s shapes at ``workload`` and start the process that keeps it."""
    return prepare.prepare_batch_basis_later(
        resolve_model_source(TINY.model),
        workload,
        attention="flash",
        routing=RoutingModel.skewed(1.2),
        cache=TraceCache(),
        after_this_process=after_this_process,
    )


def test_the_background_process_keeps_a_basis_that_derives_another_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prepare.PREPARE_ENV)
    first = run_analysis(TINY)  # the first batch: a note
    assert (TraceCache().info().batch_bases, TraceCache().info().batch_marks) == (0, 1)
    # a command line's process waits for its command to exit: this one goes on
    process = _start_tiny_basis(first.workload, after_this_process=False)
    assert process is not None
    assert process.wait(timeout=300) == 0  # a real process: imports torch, traces, stores
    info = TraceCache().info()
    assert (info.batch_bases, info.batch_marks) == (1, 0)
    assert list(TraceCache().queue.glob("*.json")) == []  # its request was taken off the queue
    # it keeps the low points too (skewed:1.2's first point is 9): every batch is derived, none traced
    assert info.entries == 2  # the first run's trace and the basis's own (at 9)
    for batch in (2, 5, 300):
        derived = run_analysis(attrs.evolve(TINY, batch_size=batch))
        assert f"language derived at batch {batch} from batch 1, 2, 3, 4, 9, " in derived.trace.batch_note
        traced = run_analysis(attrs.evolve(TINY, batch_size=batch), use_cache=False)
        assert derived.trace.tree == traced.trace.tree
        assert derived.stages == traced.stages


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc")
@pytest.mark.parametrize("forks", [False, True], ids=["new-process", "forked"])
def test_a_process_started_for_one_that_goes_on_leaves_no_zombie(monkeypatch: pytest.MonkeyPatch, forks: bool) -> None:
    # the service's build workers never exit: nothing else would reap the process once it ends
    monkeypatch.delenv(prepare.PREPARE_ENV)
    monkeypatch.setattr(prepare, "_may_fork", lambda: forks)
    monkeypatch.setattr(prepare, "prepare_request", lambda *a, **k: {"model": "no such model"})  # dropped at once
    process = _start_tiny_basis(None, after_this_process=False)
    assert isinstance(process, prepare.Forked if forks else subprocess.Popen)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{process.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{process.pid}").exists()  # ended and reaped (a zombie keeps its /proc entry)
    assert list(TraceCache().queue.glob("*.json")) == []  # (it worked the queue: the request was dropped)


def test_the_batches_traced_after_a_basis_are_those_below_what_it_derives() -> None:
    assert prepare.prepared_batches(1, traced_at=(1,)) == []  # a basis with its low points derives every batch
    assert prepare.prepared_batches(9, traced_at=(1, EXTRAPOLATE_FROM)) == [4, 2, 3, 5, 6, 7]
    assert prepare.prepared_batches(42, traced_at=(42,))[-3:] == [15, 16, 32]
    assert prepare.prepared_batches(None, traced_at=(2,)) == [4]  # no basis: the batches people try first


def _queue(request: dict[str, Any] | None, name: str = "") -> Path:
    """Put ``request`` on this test's cache's queue as ``analyze`` does; returns its file."""
    assert request is not None
    queue = TraceCache().queue
    queue.mkdir(parents=True, exist_ok=True)
    path = queue / f"{name or trace_key(request)}.json"
    path.write_text(json.dumps(request))
    return path


def test_draining_the_queue_works_every_request_and_drops_what_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4, config=source.config)
    cache = TraceCache()
    monkeypatch.delenv(prepare.PREPARE_ENV)
    kwargs: dict[str, Any] = {"attention": "flash", "cache": cache}
    # a basis that does not reproduce its batches is not kept (stood in for here: skewed:8's is dropped); skewed:1.2
    # keeps one
    real = trace_step._trace

    def trace(*args: Any, **kw: Any) -> Any:
        if kw["routing"] != RoutingModel.skewed(8.0):
            return real(*args, **kw)
        return (*real(*args, **{**kw, "early": None})[:3], None)

    monkeypatch.setattr(trace_step, "_trace", trace)
    _queue(prepare.prepare_request(source, workload, routing=RoutingModel.skewed(8.0), **kwargs))
    _queue(prepare.prepare_request(source, workload, routing=RoutingModel.skewed(1.2), **kwargs))
    _queue({"model": "no-such-model"}, name="broken")
    (cache.queue / "torn.json").write_text('{"model": ')
    assert prepare.drain(cache.queue) == 1
    assert list(cache.queue.glob("*.json")) == []
    info = cache.info()
    # skewed:8: its first point (no basis kept), then 4 and 2; skewed:1.2: batch 9 with a basis that derives every batch
    assert info.batch_bases == 1 and info.entries == (1 + 2) + 1
    assert cache.root == Path(os.environ[CACHE_DIR_ENV])


def test_a_process_that_finds_the_queue_locked_leaves_its_request_to_the_holder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4, config=source.config)
    monkeypatch.delenv(prepare.PREPARE_ENV)
    request = prepare.prepare_request(
        source, workload, attention="flash", routing=RoutingModel.skewed(1.2), cache=TraceCache()
    )
    path = _queue(request)
    with prepare._locked(TraceCache().queue) as held:
        assert held
        assert prepare.main([str(TraceCache().queue), ""], niceness=0) == 0  # returns at once
        assert path.is_file() and TraceCache().info().batch_bases == 0
    assert prepare.drain(TraceCache().queue) == 1  # the holder (here: the next drain) takes it
    assert not path.is_file()


def test_cache_info_counts_the_queue_and_clear_empties_it() -> None:
    path = _queue({"model": "deepseek-ocr-v1-tiny"})
    assert "1 batch basis queued for the background process" in CliRunner().invoke(cli, ["cache", "info"]).output
    assert CliRunner().invoke(cli, ["cache", "clear"]).exit_code == 0
    assert not path.exists()


def test_it_waits_for_the_command_that_started_it_and_gives_up_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert not prepare._exited(sleeper.pid, limit_s=0.2)
        monkeypatch.setattr(prepare, "WAIT_LIMIT_S", 0.2)
        path = _queue({"model": "deepseek-ocr-v1-tiny"})
        assert prepare.main([str(TraceCache().queue), str(sleeper.pid)], niceness=0) == 2
        assert path.is_file()  # nothing taken off the queue
    finally:
        sleeper.kill()
        sleeper.wait()
    assert prepare._exited(sleeper.pid, limit_s=5)


def test_the_batches_traced_after_the_basis_are_the_common_ones_first_then_the_rest_below_its_range() -> None:
    assert prepare.prepared_batches(11, traced_at=(1, 8)) == [4, 2, 3, 5, 6, 7, 9, 10]  # balanced routing
    assert prepare.prepared_batches(42, traced_at=(64,)) == [4, 2, 1, 3, *range(5, 17), 32]  # skewed:1.2
    assert prepare.prepared_batches(208, traced_at=(208,)) == [4, 2, 1, 3, *range(5, 17), 32, 64, 128]  # skewed:2
    assert prepare.prepared_batches(None, traced_at=(4, 8)) == [2]  # no basis: only the common ones


def _tiny_shapes() -> tuple[Any, Workload, dict[str, Any]]:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4, config=source.config)
    return source, workload, {"attention": "flash", "routing": RoutingModel.skewed(1.2)}


def test_the_working_marker_names_the_process_and_shapes_while_the_basis_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, workload, shapes = _tiny_shapes()
    key = shapes_key(source, attrs.evolve(workload, batch_size=77), **shapes)  # any batch: the same shapes
    seen: list[object] = []
    first_basis_batch = prepare.first_basis_batch
    built = prepare.built_model

    def build(*args: Any, **kwargs: Any) -> Any:
        seen.append(prepare.basis_builder(queue, key))
        return built(*args, **kwargs)

    def first(*args: Any, **kwargs: Any) -> int | None:
        seen.append(prepare.basis_builder(queue, key))
        return first_basis_batch(*args, **kwargs)

    monkeypatch.setattr(prepare, "built_model", build)
    monkeypatch.setattr(prepare, "first_basis_batch", first)
    monkeypatch.setattr(prepare, "build_batch_basis", lambda *a, **k: seen.append(prepare.basis_builder(queue, key)))
    monkeypatch.setattr(prepare, "traced", lambda *a, **k: seen.append(prepare.basis_builder(queue, key)))
    monkeypatch.delenv(prepare.PREPARE_ENV)
    path = _queue(prepare.prepare_request(source, workload, cache=TraceCache(), **shapes))
    queue = path.parent
    assert prepare.basis_builder(queue, key) is None
    with _holding(queue):  # as drain holds it
        prepare._work(path, {})
    # named from the start (a batch change then asks this process rather than building the same basis); not while
    # the batches below it are traced (here: the stand-in builder keeps no basis, so 4 and 2)
    pid = os.getpid()
    below = [None] * len(prepare.prepared_batches(None, traced_at=(1,)))
    assert seen == [pid, pid, pid, *below]
    assert not (queue / prepare.WORKING_NAME).exists()


def test_a_deepseek_ocr2_request_is_worked_with_its_own_workload_and_no_first_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OCR-2 keeps a basis of every stage, stored once with its low batches; the request carries an Ocr2Workload, not a
    # v1 Workload
    from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload

    source = resolve_model_source("deepseek-ocr-2")
    workload = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=6, batch_size=16)
    shapes: dict[str, Any] = {"attention": "flash", "routing": RoutingModel.balanced()}
    seen: list[object] = []
    monkeypatch.setattr(prepare, "built_model", lambda *a, **k: object())
    monkeypatch.setattr(prepare, "first_basis_batch", lambda *a, **k: 11)

    def build(source: Any, workload: Any, **kwargs: Any) -> int:
        seen.append(workload)
        seen.append(prepare.basis_builder(queue, key))
        return 2

    monkeypatch.setattr(prepare, "build_batch_basis", build)
    monkeypatch.setattr(prepare, "traced", lambda source, workload, **k: seen.append(workload.batch_size))
    monkeypatch.delenv(prepare.PREPARE_ENV)
    request = prepare.prepare_request(source, workload, cache=TraceCache(), **shapes)
    assert request is not None and request["ocr2"] is True
    path = _queue(request)
    queue, key = path.parent, shapes_key(source, workload, **shapes)
    with _holding(queue):
        assert prepare._work(path, {}) == 1
    assert seen == [workload, os.getpid(), 1]  # then batch 1, below the basis (from 2), traced


def test_every_trace_of_a_request_runs_on_one_tree_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    source, workload, shapes = _tiny_shapes()
    built: list[object] = []
    models: list[object] = []

    def build(*args: Any, **kwargs: Any) -> object:
        built.append(object())
        return built[-1]

    monkeypatch.setattr(prepare, "built_model", build)
    monkeypatch.setattr(prepare, "first_basis_batch", lambda *a, **k: 9)
    monkeypatch.setattr(prepare, "build_batch_basis", lambda *a, **k: models.append(k["model"]) or k["first"])
    monkeypatch.setattr(prepare, "traced", lambda *a, **k: models.append(k["model"]))
    monkeypatch.delenv(prepare.PREPARE_ENV)
    prepare._work(_queue(prepare.prepare_request(source, workload, cache=TraceCache(), **shapes)), {})
    assert len(built) == 1 and len(models) == 1 + 7  # the basis, then batches 4, 2, 3, 5, 6, 7, 8 (below 9)
    assert all(model is built[0] for model in models)
    # a tree handed over (the forked process gets the one its parent traced with) is used, not built again
    theirs = object()
    models.clear()
    request = prepare.prepare_request(source, workload, cache=TraceCache(), **shapes)
    prepare._work(_queue(request), {(source.name, "eager"): object(), (source.name, "flash"): theirs})
    assert len(built) == 1 and models and all(model is theirs for model in models)


def test_analyze_hands_the_tree_it_traced_with_to_the_background_process(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def start(*args: Any, **kwargs: Any) -> None:
        seen["background"] = kwargs["model"]

    def trace(*args: Any, **kwargs: Any) -> Any:
        seen["trace"] = kwargs["model"]
        return traced(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare_batch_basis_later", start)
    monkeypatch.setattr(pipeline, "traced", trace)
    monkeypatch.delenv(prepare.PREPARE_ENV)
    run_analysis(TINY, prepare_batches=True)  # new shapes: traced here, their basis kept in the background
    assert seen["trace"] is not None and seen["background"] is seen["trace"]
    run_analysis(attrs.evolve(TINY, max_new_tokens=5), prepare_batches=True)  # the same shapes: no tree built
    assert seen["trace"] is None


def _mark(queue: Path, pid: int, key: str) -> None:
    """The marker of a builder ``pid`` of the shapes ``key``."""
    queue.mkdir(parents=True, exist_ok=True)
    marker = {"pid": pid, "shapes": key}
    (queue / prepare.WORKING_NAME).write_text(json.dumps(marker))


@contextlib.contextmanager
def _builder_process(queue: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a builder (its pid in the marker): alive, and the queue's worker (:func:`_holding`)
    for the block."""
    builder = subprocess.Popen(["sleep", "60"])
    try:
        with _holding(queue, builder.pid):
            yield builder
    finally:
        builder.kill()
        builder.wait()


@contextlib.contextmanager
def _holding(queue: Path, pid: int | None = None) -> Iterator[None]:
    """The queue's lock held for the block (by this process), its file naming ``pid`` (this process when None) as
    the worker: as a builder holds it while it builds."""
    queue.mkdir(parents=True, exist_ok=True)
    with prepare._locked(queue) as held:
        assert held
        if pid is not None:
            (queue / prepare.LOCK_NAME).write_text(f"{pid}\n")
        yield


def test_no_wait_without_a_live_builder_of_these_shapes() -> None:
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    said: list[str] = []
    big = attrs.evolve(workload, batch_size=64)
    key = shapes_key(source, big, **shapes)

    def wait(w: Workload) -> object:
        return prepare.waited_for_basis(source, w, cache=cache, say=said.append, limit_s=5, **shapes)

    assert wait(big) is None  # no marker
    dead = subprocess.Popen(["true"])
    dead.wait()
    _mark(cache.queue, dead.pid, key)
    assert wait(big) is None  # its process is gone
    bystander = subprocess.Popen(["sleep", "60"])
    try:  # a live process that does not work the queue: a killed builder's pid, another process's by now ...
        _mark(cache.queue, bystander.pid, key)
        (cache.queue / prepare.LOCK_NAME).write_text(f"{bystander.pid}\n")  # (the killed builder's lock file too)
        assert wait(big) is None and said == []
        with _holding(cache.queue):  # ... while the queue's worker is another process
            assert wait(big) is None and said == []
    finally:
        bystander.kill()
        bystander.wait()
    with _holding(cache.queue):
        _mark(cache.queue, os.getpid(), "other shapes")
        assert wait(big) is None
    assert said == [] and not cache.wishes.exists()


@pytest.mark.parametrize("batch", [EXTRAPOLATE_FROM - 1, 64])
def test_a_batch_change_asks_the_builder_for_its_batch_and_takes_the_wish_back_when_it_gives_up(batch: int) -> None:
    # any batch, also below the range of the basis being built: the builder traces it at its next pass
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    said: list[str] = []
    asked = attrs.evolve(workload, batch_size=batch)
    key = shapes_key(source, asked, **shapes)
    wishes: list[list[dict[str, Any]]] = []
    with _builder_process(cache.queue) as builder:
        _mark(cache.queue, builder.pid, key)
        timer = threading.Timer(0.2, lambda: wishes.append(_wishes_in(cache)))
        timer.start()
        started = time.monotonic()
        meanwhile: list[list[dict[str, Any]]] = []  # the asker's own work while it waits: once, the wish written
        waited = prepare.waited_for_basis(
            source,
            asked,
            cache=cache,
            say=said.append,
            limit_s=0.5,
            meanwhile=lambda: meanwhile.append(_wishes_in(cache)),
            **shapes,
        )
        assert waited is None
        timer.join()
    assert 0.5 <= time.monotonic() - started < 5  # until the limit: this builder serves nothing
    assert meanwhile == wishes
    assert said == [
        f"waiting for background process {builder.pid}: it traces this batch next (sooner than a trace here)"
    ]
    (wish,) = wishes[0]
    assert (wish["pid"], wish["model"], wish["workload"]["batch_size"]) == (os.getpid(), source.name, batch)
    assert _wishes_in(cache) == []  # taken back: nobody waits for it now


def _wishes_in(cache: TraceCache) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(cache.wishes.glob("*.json"))] if cache.wishes.is_dir() else []


def test_a_batch_the_builder_does_not_serve_traces_without_building_its_basis_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prepare, "BASIS_WAIT_LIMIT_S", 0.3)  # (this process stands in for the builder: it serves none)
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    run_analysis(TINY)  # the first batch: the shapes are seen
    _mark(cache.queue, os.getpid(), shapes_key(source, workload, **shapes))
    said: list[str] = []
    with _holding(cache.queue):
        run_analysis(attrs.evolve(TINY, batch_size=EXTRAPOLATE_FROM), prepare_batches=True, progress=said.append)
    assert any("waiting for background process" in line for line in said)  # asked, and gave up at the limit
    assert cache.info().batch_bases == 0  # traced, and no second basis built beside the one being built
    (cache.queue / prepare.WORKING_NAME).unlink()
    run_analysis(attrs.evolve(TINY, batch_size=EXTRAPOLATE_FROM + 2), prepare_batches=True)
    assert cache.info().batch_bases == 1  # with nobody building it, another batch of seen shapes keeps it


def test_a_batch_change_waits_for_the_basis_being_built_and_derives_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    run_analysis(TINY)  # the first batch: the shapes are seen
    assert prepare.build_batch_basis(source, workload, cache=cache, **shapes) == 1  # from batch 1 (low points 1..4)
    key = shapes_key(source, workload, **shapes)
    kept = cache.batch_path(key)
    aside = kept.with_name("aside")
    kept.rename(aside)  # as if still being built (the first batch's note still there) ...
    cache.mark_batch(analysis_key_parts(source, workload, **shapes))
    with _builder_process(cache.queue) as builder:  # ... by this process
        _mark(cache.queue, builder.pid, key)

        def finish() -> None:
            aside.rename(kept)
            (cache.queue / prepare.WORKING_NAME).unlink()

        timer = threading.Timer(1.0, finish)
        timer.start()
        said: list[str] = []
        result = run_analysis(attrs.evolve(TINY, batch_size=300), prepare_batches=True, progress=said.append)
        timer.join()
    assert any(f"waiting for background process {builder.pid}" in line for line in said)
    assert any("from the trace cache" in line for line in said)
    assert "language derived at batch 300 from batch" in result.trace.batch_note


def test_a_waiting_batch_change_is_served_as_soon_as_a_stored_basis_derives_it() -> None:
    # the builder stores its basis once without its low batches, then with them: a batch in the first one's range
    # does not wait for the second
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    run_analysis(TINY)
    assert prepare.build_batch_basis(source, workload, cache=cache, **shapes) == 1
    key = shapes_key(source, workload, **shapes)
    kept = cache.batch_path(key)
    aside = kept.with_name("aside")
    kept.rename(aside)
    with _builder_process(cache.queue) as builder:  # still building when the basis is stored
        _mark(cache.queue, builder.pid, key)
        timer = threading.Timer(0.5, lambda: aside.rename(kept))
        timer.start()
        started = time.monotonic()
        served = prepare.waited_for_basis(
            source, attrs.evolve(workload, batch_size=300), cache=cache, say=lambda _: None, limit_s=50, **shapes
        )
        waited = time.monotonic() - started
        timer.join()
    assert served is not None and "language derived at batch 300" in served[0].batch_note
    assert waited < 30  # not until the builder is done (60 s) or the limit (50 s)


def test_the_builder_traces_a_wish_on_its_tree_and_stores_it_where_the_asker_looks() -> None:
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    key = shapes_key(source, workload, **shapes)
    asked = attrs.evolve(workload, batch_size=6, max_new_tokens=3)  # (another output length is the same shapes)
    model = prepare.built_model(source, attention="flash")
    wish = prepare._wished(source, asked, key=key, cache=cache, **shapes)
    assert wish is not None and wish.exists()
    stale = prepare._wished(source, attrs.evolve(asked, batch_size=7), key=key, cache=cache, **shapes)
    assert stale is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "pid": dead.pid}))  # its asker is gone
    wishes = prepare._Wishes(cache, key, source, {**shapes, "cache": cache, "model": model})
    wishes()
    assert _wishes_in(cache) == []  # both taken off
    assert trace_step.entry_path(source, asked, cache=cache, **shapes).exists()
    assert not trace_step.entry_path(source, attrs.evolve(asked, batch_size=7), cache=cache, **shapes).exists()
    served = trace_step.cached(source, asked, cache=cache, **shapes)
    assert served is not None
    direct = traced(source, asked, cache=None, **shapes)[0]
    assert (served[0].nodes, served[0].op_ledger) == (direct.nodes, direct.op_ledger)


def test_the_first_call_waits_for_the_forking_command_to_exit_then_briefly_for_a_wish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, workload, shapes = _tiny_shapes()
    cache = TraceCache()
    key = shapes_key(source, workload, **shapes)
    monkeypatch.setattr(prepare, "_PARENT_LIMIT_S", 0.2)

    def first_call(window_after: int) -> float:
        wishes = prepare._Wishes(cache, key, source, {**shapes, "cache": cache}, window_after=window_after)
        started = time.monotonic()
        wishes()
        wishes()  # (the window is the first call's only)
        return time.monotonic() - started

    # the command exited (this process's parent is another): the window, no wish in it
    monkeypatch.setattr(prepare, "WISH_WINDOW_S", 0.3)
    assert 0.3 <= first_call(window_after=-1) < 2.5
    # the command goes on past the limit (a service's worker): no window after the limit
    monkeypatch.setattr(prepare, "WISH_WINDOW_S", 5.0)
    assert 0.2 <= first_call(window_after=os.getppid()) < 2.5


def test_a_batch_change_right_after_a_cold_run_is_traced_by_the_background_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forked builder serves a batch asked while it builds the basis (here before the basis is done: the tiny
    model's basis under skewed routing takes seconds), on its tree, and the asker reads it from the cache."""
    monkeypatch.delenv(prepare.PREPARE_ENV)
    monkeypatch.setattr(prepare, "_may_fork", lambda: True)
    monkeypatch.setattr(prepare, "_PARENT_LIMIT_S", 0.1)  # (this process, its parent, goes on: no window)
    search = prepare.first_basis_batch

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)  # (the basis's first pass comes after this: the wish is in by then, whatever the load)
        return search(*args, **kwargs)

    monkeypatch.setattr(prepare, "first_basis_batch", slow_search)
    source, workload, shapes = _tiny_shapes()
    first = run_analysis(TINY)
    cache = TraceCache()
    key = shapes_key(source, workload, **shapes)
    process = _start_tiny_basis(first.workload)
    assert isinstance(process, prepare.Forked)
    deadline = time.monotonic() + 60
    while prepare.basis_builder(cache.queue, key) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # (as a command a moment later finds it)
    said: list[str] = []
    asked = attrs.evolve(TINY, batch_size=2)
    result = run_analysis(asked, prepare_batches=True, progress=said.append)
    done_before = prepare.basis_builder(cache.queue, key) is not None
    assert process.wait(timeout=300) == 0
    assert any(f"waiting for background process {process.pid}: it traces this batch next" in s for s in said)
    assert any("from the trace cache" in line for line in said)
    assert done_before  # served while the basis was still being built ...
    assert "derived" not in result.trace.batch_note  # ... by a trace of its own
    direct = traced(source, attrs.evolve(workload, batch_size=2), cache=None, **shapes)[0]
    assert (result.trace.nodes, result.trace.op_ledger) == (direct.nodes, direct.op_ledger)


def test_a_forked_worker_keeps_the_basis_while_this_process_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prepare.PREPARE_ENV)
    monkeypatch.setattr(prepare, "_may_fork", lambda: True)  # a second core or not: fork
    first = run_analysis(TINY)
    queue = TraceCache().queue
    process = _start_tiny_basis(first.workload)
    assert isinstance(process, prepare.Forked)
    assert process.wait(timeout=300) == 0  # a child of this process: its imports, its own session
    info = TraceCache().info()
    assert (info.batch_bases, info.batch_marks) == (1, 0)
    assert list(queue.glob("*.json")) == [] and prepare.queue_worker(queue) is None
    assert not (queue / prepare.WORKING_NAME).exists()
    derived = run_analysis(attrs.evolve(TINY, batch_size=300))
    assert "language derived at batch 300 from batch" in derived.trace.batch_note


def test_the_queue_names_its_worker_while_it_holds_the_lock() -> None:
    queue = TraceCache().queue
    queue.mkdir(parents=True)
    assert prepare.queue_worker(queue) is None
    with prepare._locked(queue) as held:
        assert held and prepare.queue_worker(queue) == os.getpid()
        assert f"background process {os.getpid()} is keeping" in CliRunner().invoke(cli, ["cache", "info"]).output
    assert prepare.queue_worker(queue) is None
    assert "background process" not in CliRunner().invoke(cli, ["cache", "info"]).output
    dead = subprocess.Popen(["true"])
    dead.wait()
    (queue / prepare.LOCK_NAME).write_text(f"{dead.pid}\n")  # a worker killed while holding it
    assert prepare.queue_worker(queue) is None


_HOLDER = """
import signal, sys, time
from pathlib import Path
from llm_perf_opt.analysis import prepare
queue = Path(sys.argv[1])
if sys.argv[2:] == ["stubborn"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with prepare._locked(queue) as held:
    assert held
    (queue / prepare.WORKING_NAME).write_text('{"pid": %d, "shapes": "k"}' % prepare.os.getpid())
    print("held", flush=True)
    time.sleep(60)
"""
"""A queue worker as the background process is one: it holds the queue's lock, names itself in the marker, works."""


def _holder(queue: Path, *args: str) -> subprocess.Popen[str]:
    queue.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(queue), *args], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_cache_clear_stops_the_process_keeping_batch_bases_first() -> None:
    # its basis would otherwise land in the cache just emptied (atomic writes: stopping it leaves nothing half-written)
    queue = TraceCache().queue
    request = _queue({"model": "deepseek-ocr-v1-tiny"})
    holder = _holder(queue)
    try:
        assert prepare.queue_worker(queue) == holder.pid
        cleared = CliRunner().invoke(cli, ["cache", "clear"])
        assert holder.wait(timeout=10) == -signal.SIGTERM
    finally:
        holder.kill()
        holder.wait()
    assert cleared.exit_code == 0
    assert cleared.output.startswith(f"stopped background process {holder.pid} (it was keeping batch bases)\n")
    assert not request.exists() and not (queue / prepare.WORKING_NAME).exists()
    assert prepare.queue_worker(queue) is None and not prepare._lock_held(queue)


def test_a_worker_that_does_not_stop_on_sigterm_is_killed() -> None:
    queue = TraceCache().queue
    holder = _holder(queue, "stubborn")
    try:
        assert prepare.stop_queue_worker(queue, wait_s=0.5) == holder.pid
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        holder.kill()
        holder.wait()
    assert prepare.queue_worker(queue) is None and not (queue / prepare.WORKING_NAME).exists()


def test_cache_clear_signals_no_process_that_does_not_hold_the_queue() -> None:
    queue = TraceCache().queue
    queue.mkdir(parents=True)
    assert prepare.stop_queue_worker(queue) is None  # no lock file at all
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        # a pid left in the lock file by a worker that died: by now it may be any process's
        (queue / prepare.LOCK_NAME).write_text(f"{bystander.pid}\n")
        assert prepare.queue_worker(queue) is None  # (alive, but not holding the lock: cache info names none)
        assert "background process" not in CliRunner().invoke(cli, ["cache", "info"]).output
        cleared = CliRunner().invoke(cli, ["cache", "clear"])
        assert cleared.exit_code == 0 and "stopped" not in cleared.output
        assert bystander.poll() is None  # still running
        with prepare._locked(queue) as held:  # held by this very process: never signalled either
            assert held and prepare.stop_queue_worker(queue) is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_worker_starting_while_the_lock_is_probed_still_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # _lock_held takes the lock for a moment when nobody holds it: a worker trying then must not give up (it would
    # leave its request to a "holder" that works nothing)
    queue = TraceCache().queue
    queue.mkdir(parents=True)
    real = prepare.fcntl.flock
    calls: list[int] = []

    def probed_at_first(fd: int, operation: int) -> None:
        calls.append(operation)
        if len(calls) == 1:
            raise BlockingIOError  # the probe holds it right now
        real(fd, operation)

    monkeypatch.setattr(prepare.fcntl, "flock", probed_at_first)
    with prepare._locked(queue) as held:
        assert held and len(calls) == 2
    calls.clear()

    def held_on(fd: int, operation: int) -> None:
        calls.append(operation)
        raise BlockingIOError

    monkeypatch.setattr(prepare.fcntl, "flock", held_on)
    with prepare._locked(queue) as held:  # held for longer than a probe: left to its holder
        assert not held and len(calls) == prepare._TAKE_TRIES
