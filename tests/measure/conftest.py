"""Shared builders for the measure tests: a hand-made measurement with round numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.measure import predict
from llm_perf_opt.measure.record import (
    DeviceRecord,
    Measurement,
    SoftwareRecord,
    StageTimings,
    WorkloadRecord,
)
from llm_perf_opt.workloads import Workload


def make_measurement(**changes: Any) -> Measurement:
    """Tiny mode, 512x512 page, N=4 (3 decode steps), three repeats with known medians."""
    workload = WorkloadRecord.from_workload(Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4))
    runs = (
        StageTimings(vision_s=0.010, projector_s=0.001, prefill_s=0.004, decode_steps_s=(0.002, 0.003, 0.004)),
        StageTimings(vision_s=0.012, projector_s=0.003, prefill_s=0.006, decode_steps_s=(0.002, 0.002, 0.002)),
        StageTimings(vision_s=0.011, projector_s=0.002, prefill_s=0.005, decode_steps_s=(0.003, 0.002, 0.009)),
    )
    base = Measurement(
        run_id="meas-test-1",
        created_utc="2026-01-01T00:00:00Z",
        model="deepseek-ocr-v1-tiny",
        workload=workload,
        device=DeviceRecord(
            runtime="cpu", name="Test CPU", threads=2, matmul_flops_per_s=1e11, memory_bytes_per_s=1e10
        ),
        software=SoftwareRecord(python="3.11", torch="2.13.0", llm_perf_opt="0.1.0", platform="linux"),
        dtype="fp32",
        attention="eager",
        warmup_runs=1,
        clock="perf_counter",
        runs=runs,
    )
    return evolve(base, **changes)


@pytest.fixture
def measurement_factory() -> Callable[..., Measurement]:
    return make_measurement


@pytest.fixture(autouse=True)
def _no_traces_held() -> Iterator[None]:
    """Each test starts without the traces an earlier test left in this process's memo (its trace cache on disk is
    its own already): which shapes are pending must not depend on the order the tests run in."""
    predict.forget_traces()
    yield
