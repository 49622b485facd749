"""The two runtime constants fitted on published points (role: fit), and how.

Everything else in the runtimes is set from documented facts.  Two host-side constants of SGLang have no
first-principles value: the per-request time outside the model that a client-side TTFT includes (HTTP, tokenizer
and detokenizer processes, the first schedule) and the per-step host time of its decode loop.  Each is solved in
closed form from one published point; the catalog holds the rounded result and tests/runtimes re-derive it.

* ``request_overhead_s = TTFT_published - (vision + prefill)`` (TTFT is additive in it);
* ``step_host_s = TPOT_published - TPOT(step_host_s = 0)`` (every decode step adds it once).

Left out: the spread of the requests behind a published mean (the mean request stands for all of them).
"""

from __future__ import annotations

from attrs import evolve

from llm_perf_opt.runtimes.catalog import Runtime
from llm_perf_opt.runtimes.costs import ModelConfig, WorkloadLike
from llm_perf_opt.runtimes.published import PublishedPoint
from llm_perf_opt.runtimes.timer import runtime_iteration_timer

__all__ = ["FITTED_ON", "fit_request_overhead_s", "fit_step_host_s"]

FITTED_ON = {
    "sglang.request_overhead_s": "sglang-mi300x-ocr1-c1-ttft",
    "sglang.step_host_s": "sglang-h200-ocr2-c1-tpot",
}
"""Which published point each fitted constant comes from (those points have ``role: fit``)."""


def _request(runtime: Runtime, point: PublishedPoint, config: ModelConfig, probe: WorkloadLike) -> tuple[float, float]:
    timer = runtime_iteration_timer(
        runtime=runtime, config=config, device=point.device, dtype=point.dtype, workloads={"": probe}
    )
    times = timer.request_times(prompt_tokens=point.prompt_tokens or 1, max_new_tokens=point.output_tokens or 2)
    return times.ttft_s, times.tpot_s


def fit_request_overhead_s(
    *, runtime: Runtime, point: PublishedPoint, config: ModelConfig, probe: WorkloadLike
) -> float:
    """``TTFT_published - TTFT(request_overhead_s = 0)`` in seconds, for a text-only ``ttft_ms`` point."""
    ttft, _ = _request(evolve(runtime, request_overhead_s=0.0), point, config, probe)
    return point.value * 1e-3 - ttft


def fit_step_host_s(*, runtime: Runtime, point: PublishedPoint, config: ModelConfig, probe: WorkloadLike) -> float:
    """``TPOT_published - TPOT(step_host_s = 0)`` in seconds, for a ``tpot_ms`` point."""
    _, tpot = _request(evolve(runtime, step_host_s=0.0), point, config, probe)
    return point.value * 1e-3 - tpot
