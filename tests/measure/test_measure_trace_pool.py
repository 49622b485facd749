"""Tracing ahead over several processes: each distinct shape once, the same trees as tracing in turn, and a trace
that fails anywhere fails in the caller with the error a serial run gives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.errors import UserError
from llm_perf_opt.measure import meta_trace, predict
from llm_perf_opt.measure.predict import cost_job, cost_tree, job_cached, memory_job
from llm_perf_opt.measure.record import Measurement, WorkloadRecord
from llm_perf_opt.measure.trace_pool import (
    PROCESSES_ENV,
    TracePool,
    jobs_of,
    pending_groups,
    processes_for,
    trace_jobs_ahead,
)
from llm_perf_opt.tracecache import CACHE_DIR_ENV
from llm_perf_opt.workloads import Workload

Factory = Callable[..., Measurement]


def _workload(**changes: Any) -> Workload:
    return Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4, **changes)


def _four(factory: Factory) -> list[Measurement]:
    """Two trees (eager, sdpa) times two workloads (prompts of 9 and 20 tokens), plus a second file of the first
    shape."""
    base = factory()
    longer = evolve(base, run_id="longer", workload=WorkloadRecord.from_workload(_workload(prompt_tokens=20)))
    sdpa = [evolve(m, run_id=f"{m.run_id}-sdpa", attention="sdpa") for m in (base, longer)]
    return [base, longer, *sdpa, evolve(base, run_id="same-shape")]


def test_jobs_are_distinct_grouped_by_tree_and_skip_what_is_cached(measurement_factory: Factory) -> None:
    predict.forget_traces()  # earlier tests traced these shapes in this process
    files = _four(measurement_factory)
    jobs = jobs_of(files, memory=files[:1])
    assert jobs[:5] == [cost_job(m) for m in files] and jobs[5] == memory_job(files[0])
    groups = pending_groups(jobs)
    assert [[(j[1], j[2], j[3].prompt_tokens) for j in g] for g in groups] == [
        [("eager", "bf16", 9), ("eager", "bf16", 20)],
        [("sdpa", "bf16", 9), ("sdpa", "bf16", 20)],
        [("eager", "fp32", 9)],
    ]
    predict.run_job(cost_job(files[0]))
    assert job_cached(cost_job(files[0]))
    assert [len(g) for g in pending_groups(jobs)] == [2, 1, 1]  # the traced one is left out


def test_processes_follow_the_cores_the_setting_and_the_cache(
    measurement_factory: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    groups = pending_groups(jobs_of(_four(measurement_factory)))
    monkeypatch.setenv(PROCESSES_ENV, "3")
    assert processes_for(groups) == 2  # never more than the groups
    monkeypatch.setenv(PROCESSES_ENV, "1")
    assert processes_for(groups) == 1
    monkeypatch.setenv(PROCESSES_ENV, "2")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "not-a-folder"))
    assert processes_for(groups) == 1  # children could not hand their traces back
    for bad in ("0", "abc", "-2"):
        monkeypatch.setenv(PROCESSES_ENV, bad)
        with pytest.raises(UserError, match=f"{PROCESSES_ENV}='{bad}' is not a positive whole number"):
            processes_for(groups)


def test_two_processes_trace_every_shape_once_and_give_the_serial_trees(
    measurement_factory: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = _four(measurement_factory)
    serial = [cost_tree(m) for m in files]
    predict.forget_traces()
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "fresh"))
    monkeypatch.setenv(PROCESSES_ENV, "2")
    assert trace_jobs_ahead(jobs_of(files)) == 2
    assert all(job_cached(job) for job in jobs_of(files))  # the child's traces came back through the disk
    calls: list[str] = []
    monkeypatch.setattr(meta_trace, "trace_workload", lambda *a, **k: calls.append("trace"))
    assert [cost_tree(m) for m in files] == serial
    assert calls == []  # nothing traced again


def test_the_jobs_needed_now_are_done_when_the_pool_starts(
    measurement_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict.forget_traces()
    monkeypatch.setenv(PROCESSES_ENV, "2")
    files = _four(measurement_factory)
    now, later = jobs_of(files[:2]), jobs_of((), memory=files[:2])  # later: fp32, another tree
    with TracePool.start(now, later=later) as pool:
        assert all(job_cached(job) for job in now)
        pool.finish()
        assert all(job_cached(job) for job in later)
    assert pool.processes == 2 and [len(g) for g in pool.groups] == [2, 2] and pool.first == 1
    assert all(child.exitcode == 0 for child in pool.children)


def test_a_failing_trace_fails_in_the_caller_with_the_serial_error(
    measurement_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = meta_trace.trace_workload

    def broken(source: Any, workload: Any, **kwargs: Any) -> Any:
        if workload.prompt_tokens == 20:
            raise RuntimeError("no kernel for this shape")
        return real(source, workload, **kwargs)

    monkeypatch.setattr(meta_trace, "trace_workload", broken)
    predict.forget_traces()
    monkeypatch.setenv(PROCESSES_ENV, "2")
    files = _four(measurement_factory)
    assert trace_jobs_ahead(jobs_of(files)) == 2  # no error here
    assert job_cached(cost_job(files[0])) and not job_cached(cost_job(files[1]))
    with pytest.raises(RuntimeError, match="no kernel for this shape"):
        cost_tree(files[1])
