"""Published serving measurements through the simulator: the ``serving`` predictor of docs/validation-runtimes.md.

A serving point (``kind: serving`` in ``benchmarks/published/*.yaml``) is simulated under the conditions it states:
its runtime with that runtime's own defaults on its device (``max_num_seqs`` at least its concurrency), a closed loop
of ``concurrency`` clients sending ``10 x concurrency`` requests (the SGLang cookbook runs send 1,000 at 100; sources
that state no count get the same), its page (mode and size) or text-only prompt, and its output length. Published
lengths are means over requests whose lengths vary (the cookbooks' random dataset draws each request's lengths
uniformly; pages differ in how much text they hold), so each request draws its output length - and a text-only
prompt's length - uniformly from ``1 .. 2 x mean - 1``, which keeps the stated mean. Every constant comes from the
runtime kernel model and the runtimes' documented defaults; one of them, SGLang's host time per prefill iteration, is
fitted here on one serving point (:func:`fit_prefill_host_s`, :data:`llm_perf_opt.runtimes.fit.FITTED_ON`).

The metric maps to the simulator's output: ``output_tokens_per_s``, ``pages_per_s``, ``pages_per_day``, and the
means of ``ttft_ms``, ``tpot_ms``, ``e2e_ms`` (the cookbooks report means).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve

from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.runtimes.catalog import Runtime, get_runtime
from llm_perf_opt.runtimes.published import PublishedPoint
from llm_perf_opt.runtimes.validation import Predicted, Predictor, WorkloadFactory
from llm_perf_opt.serving.engine import Load
from llm_perf_opt.serving.memory import ModelConfig, kv_budget
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix
from llm_perf_opt.serving.settings import default_settings
from llm_perf_opt.serving.simulate import simulate
from llm_perf_opt.serving.timing import runtime_timer

__all__ = ["REQUESTS_PER_CLIENT", "around", "fit_prefill_host_s", "serving_predictor", "simulate_point"]

REQUESTS_PER_CLIENT = 10
"""Requests per client of a simulated serving point (1,000 at concurrency 100, as the SGLang cookbook runs)."""


def around(mean: int) -> LengthDistribution:
    """Lengths uniform on ``1 .. 2 x mean - 1`` (mean ``mean``)."""
    return LengthDistribution(values=tuple(range(1, 2 * max(mean, 1))), source=f"uniform 1..{2 * max(mean, 1) - 1}")


def _mix(point: PublishedPoint, workloads: WorkloadFactory, output: int) -> RequestMix:
    if point.text_only:
        if point.prompt_tokens is None or point.prompt_tokens < 2:
            raise UserError(f"published point {point.point_id}: a text-only serving point needs prompt_tokens >= 2")
        return RequestMix(workload=None, prompt_tokens=around(point.prompt_tokens - 1), output_tokens=around(output))
    return RequestMix(workload=workloads(point), prompt_tokens=9, output_tokens=around(output))


def simulate_point(
    point: PublishedPoint,
    configs: Mapping[str, ModelConfig],
    workloads: WorkloadFactory,
    *,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """The simulator's metrics for ``point``'s stated conditions (see the module docstring); ``runtime``: a variant
    of the point's runtime to simulate instead of the catalog's (fits)."""
    if point.concurrency is None or point.output_tokens is None:
        raise UserError(f"published point {point.point_id}: a serving point needs concurrency and output_tokens")
    config, device = configs[point.model], get_device(point.device)
    c, n = point.concurrency, point.output_tokens
    mix = _mix(point, workloads, n)
    base = default_settings(point.runtime, device)
    settings = default_settings(point.runtime, device, max_num_seqs=max(base.max_num_seqs, c))
    budget = kv_budget(config=config, device=device, dtype=point.dtype, settings=settings, mix=mix)
    timer = runtime_timer(runtime or point.runtime, config, device, point.dtype, mix)
    result = simulate(
        model=point.model,
        mix=mix,
        load=Load(requests=REQUESTS_PER_CLIENT * c, concurrency=c),
        timer=timer,
        settings=settings,
        budget=budget,
        describe={"timer": timer.describe()},
    )
    return result.metrics


def _value(point: PublishedPoint, m: Mapping[str, Any]) -> float:
    thr = m["throughput"]
    values = {
        "output_tokens_per_s": thr["output_tokens_per_s"],
        "pages_per_s": thr["pages_per_s"],
        "pages_per_day": thr["pages_per_day"],
        "ttft_ms": m["ttft_ms"]["mean"],
        "tpot_ms": m["tpot_ms"]["mean"],
        "e2e_ms": m["e2e_ms"]["mean"],
    }
    if point.metric not in values:
        raise UserError(f"published point {point.point_id}: the serving simulator has no {point.metric}")
    return float(values[point.metric])


def fit_prefill_host_s(
    *, point: PublishedPoint, configs: Mapping[str, ModelConfig], workloads: WorkloadFactory, total_s: float
) -> float:
    """The host time per prefill iteration (seconds, in ``0 .. total_s``) at which the simulated throughput of
    ``point`` equals the published one, the rest of ``total_s`` staying outside the engine (``request_overhead_s``),
    so a c=1 TTFT is unchanged.  Bisection: moving time onto the engine thread only lowers throughput."""
    base = get_runtime(point.runtime)
    low, high = 0.0, total_s
    for _ in range(24):
        mid = (low + high) / 2
        variant = evolve(base, prefill_host_s=mid, request_overhead_s=total_s - mid)
        value = _value(point, simulate_point(point, configs, workloads, runtime=variant))
        low, high = (mid, high) if value > point.value else (low, mid)
    return (low + high) / 2


def serving_predictor(
    configs: Mapping[str, ModelConfig], workloads: WorkloadFactory, *, runtimes: Mapping[str, Runtime] | None = None
) -> Predictor:
    """The ``serving`` entry of :func:`llm_perf_opt.runtimes.validation.validate`'s predictors (``runtimes``:
    variants to simulate instead of the catalog's, by runtime id)."""
    chosen = runtimes or {}

    def predict(point: PublishedPoint) -> Predicted:
        m = simulate_point(point, configs, workloads, runtime=chosen.get(point.runtime))
        s, e, mem = m["scheduler"], m["engine"], m["memory"]
        req = m["requests"]
        prompt = 1 + req["image_tokens"] + (point.prompt_tokens - 1 if point.text_only and point.prompt_tokens else 9)
        mixed = "" if s["mixed_batches"] else ", separate prefill batches"
        drivers = (
            f"simulated closed loop C={point.concurrency}, {m['load']['requests']} requests, mean S={prompt}, "
            f"N uniform 1..{2 * (point.output_tokens or 1) - 1}; {s['runtime']} max_num_seqs {s['max_num_seqs']}, "
            f"max_num_batched_tokens {s['max_num_batched_tokens']}{mixed}; mean batch {e['mean_running']:.1f}, "
            f"KV peak {mem['kv_peak_usage']:.0%}, {m['preemptions']} preemptions; p50 TPOT "
            f"{m['tpot_ms']['p50']:.2f} ms, p90 {m['tpot_ms']['p90']:.2f} ms"
        )
        return Predicted(value=_value(point, m), drivers=drivers)

    return predict
