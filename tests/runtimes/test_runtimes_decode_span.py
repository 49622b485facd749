"""Every decode step summed in closed form equals the timer's step-by-step sum (up to rounding), whatever the runtime,
batch and output length; the crossings (compute vs memory, launches vs roofline) land on the step where the
comparison changes."""

from __future__ import annotations

import math

import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.perf.iteration import BatchComposition
from llm_perf_opt.runtimes.decode_span import _compute_wins, _first_device_bound, _Group, _roof_at, decode_span
from llm_perf_opt.runtimes.request import StageBound
from llm_perf_opt.runtimes.timer import RuntimeIterationTimer, lone_request_timer
from llm_perf_opt.workloads import Workload


def _step_by_step(timer: RuntimeIterationTimer, *, batch: int, seq_len: int, steps: int) -> tuple[float, StageBound]:
    seconds = 0.0
    bound = StageBound(compute_s=0.0, memory_s=0.0, overhead_s=0.0, kernels=0.0, bytes=0.0)
    for i in range(1, steps + 1):
        step = BatchComposition(decode_context=(seq_len + i,) * batch)
        seconds += timer.iteration_s(step)
        bound = bound + StageBound.of(timer.forward_terms(step), overlap=timer.runtime.overlap)
    return seconds, bound


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-flash", "hf-cuda-graph", "vllm", "sglang"])
@pytest.mark.parametrize(("batch", "steps"), [(1, 1), (1, 511), (8, 200), (300, 40)])
def test_closed_form_equals_the_step_by_step_sum(
    runtime: str, batch: int, steps: int, v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    timer, _, s = lone_request_timer(runtime=runtime, config=v1_config, workload=standard, device="h100-sxm")
    span = decode_span(timer, batch=batch, seq_len=s, steps=steps)
    seconds, bound = _step_by_step(timer, batch=batch, seq_len=s, steps=steps)
    assert math.isclose(span.seconds, seconds, rel_tol=1e-12)
    for name in ("compute_s", "memory_s", "overhead_s", "kernels", "bytes"):
        assert math.isclose(getattr(span, name), getattr(bound, name), rel_tol=1e-12, abs_tol=1e-15), name


def test_no_steps_is_zero(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    timer, _, s = lone_request_timer(runtime="vllm", config=v1_config, workload=standard, device="h100-sxm")
    span = decode_span(timer, batch=4, seq_len=s, steps=0)
    assert (span.seconds, span.kernels, span.bytes) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "group",
    [
        _Group(1.0, 0.5, 40.0, 0.1),  # memory first, compute from L = 98.5 on -> 99
        _Group(1.0, 0.5, 40.0, 0.0),  # compute from L = 78
        _Group(50.0, 0.0, 1.0, 0.5),  # compute up to L = 98
        _Group(1.0, 0.25, 1.0, 0.25),  # equal everywhere: compute wins (>=)
        _Group(0.0, 1.0, 1e9, 0.0),  # memory over the whole range
        _Group(1e9, 0.0, 0.0, 1.0),  # compute over the whole range
        _Group(1.0, 5e-324, 0.0, 0.0),  # a crossing at -inf in floats: clamped, no overflow
        _Group(0.0, 0.0, 1.0, 1e-300),  # memory wins everywhere, slope difference tiny
    ],
)
def test_compute_wins_where_the_comparison_says(group: _Group) -> None:
    lo, hi = 10, 500
    first, last = _compute_wins(group, lo, hi)
    wins = [x for x in range(lo, hi + 1) if group.c0 + group.c1 * x - (group.m0 + group.m1 * x) >= 0.0]
    assert list(range(first, last + 1)) == wins


def test_launches_win_until_the_roofline_reaches_them() -> None:
    groups = [_Group(0.0, 1e-6, 2e-4, 2e-6), _Group(1e-3, 0.0, 0.0, 1e-7)]
    gaps, launch, lo, hi = 1e-4, 3e-3, 100, 2000
    start = _first_device_bound(groups, gaps, launch, lo, hi)
    assert lo < start <= hi
    assert all((_roof_at(groups, x) + gaps >= launch) == (x >= start) for x in range(lo, hi + 1))
    assert _first_device_bound(groups, gaps, 1.0, lo, hi) == hi + 1  # the launches win every step
    assert _first_device_bound(groups, gaps, 0.0, lo, hi) == lo
