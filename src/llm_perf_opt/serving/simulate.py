"""One serving simulation, end to end: settings + KV budget + request mix + load -> engine run -> metrics.

Metrics follow ``vllm bench serve``: throughput is completed work over the whole run (first arrival to last
completion); TTFT is arrival to first token; TPOT is ``(finish - first token) / (N - 1)`` per request with
``N > 1``; e2e is arrival to finish. Percentiles use linear interpolation between order statistics (numpy's
default), on requests in arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.perf.iteration import IterationTimer
from llm_perf_opt.perf.throughput import SECONDS_PER_DAY
from llm_perf_opt.serving.cache import CachedTimer
from llm_perf_opt.serving.engine import Load, SimulationRun, run_engine
from llm_perf_opt.serving.memory import KvBudget
from llm_perf_opt.serving.requests import RequestMix
from llm_perf_opt.serving.settings import SchedulerSettings
from llm_perf_opt.serving.trust import trust_line

__all__ = ["SimulationResult", "percentile", "simulate", "summary_stats"]


def percentile(values: Sequence[float], q: float) -> float:
    """``q``-th percentile (0..100), linear between closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_stats(values_s: Sequence[float]) -> dict[str, float]:
    """``{mean, p50, p90, p99}`` of seconds, in milliseconds (rounded to 0.001 ms)."""
    mean = sum(values_s) / len(values_s) if values_s else 0.0
    out = {"mean": mean} | {f"p{q}": percentile(values_s, q) for q in (50, 90, 99)}
    return {k: round(v * 1e3, 3) for k, v in out.items()}


@frozen(kw_only=True)
class SimulationResult:
    """The engine's run and the numbers a person reads."""

    run: SimulationRun
    metrics: dict[str, Any] = field(metadata={"help": "the JSON object `simulate --format json` prints"})


def _throughput(run: SimulationRun) -> dict[str, float]:
    records, span = run.records, run.makespan_s
    pages = sum(1 for r in records if r.image)
    out_tokens = sum(r.output_tokens for r in records)
    in_tokens = sum(r.prompt_tokens for r in records)
    per_s = (lambda x: x / span) if span > 0 else (lambda x: 0.0)
    return {
        "requests_per_s": round(per_s(len(records)), 6),
        "pages_per_s": round(per_s(pages), 6),
        "pages_per_day": round(per_s(pages) * SECONDS_PER_DAY, 1),
        "output_tokens_per_s": round(per_s(out_tokens), 3),
        "input_tokens_per_s": round(per_s(in_tokens), 3),
    }


def simulate(
    *,
    model: str,
    mix: RequestMix,
    load: Load,
    timer: IterationTimer,
    settings: SchedulerSettings,
    budget: KvBudget,
    seed: int = 0,
    context_quantum: int = 64,
    describe: dict[str, Any] | None = None,
    skip_first: int = 0,
) -> SimulationResult:
    """Run the engine and summarise it for ``model`` (a model source name: which published points the expected error
    quotes). ``describe`` (device, runtime, timer...) is copied into the metrics, with ``model``.
    A timer with a ``request_overhead_s`` attribute delays each request's entry into the scheduler by that much.
    ``skip_first`` leaves the first requests issued out of the latency percentiles (a closed loop's opening burst of
    ``C`` simultaneous requests, for steady-state latencies; a run with no request after them keeps them all and says
    so: ``all_in_opening_burst``); throughput always counts the whole run."""
    if load.requests < 1:
        raise UserError(f"--requests must be >= 1, got {load.requests}")
    if (load.concurrency is None) == (load.rate is None):
        raise UserError("give exactly one of --concurrency C (closed loop) or --rate R (open loop, requests/s)")
    if load.concurrency is not None and load.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1 (clients sending requests), got {load.concurrency}")
    if load.rate is not None and not (load.rate > 0 and math.isfinite(load.rate)):
        raise UserError(f"--rate must be a positive number of requests per second, got {load.rate}")
    mix.check()
    longest = 1 + mix.image_tokens + _max_len(mix.prompt_tokens) + _max_len(mix.output_tokens)
    if mix.repetition_share > 0:
        longest = max(longest, mix.max_model_len)
    if longest > budget.capacity_tokens:
        raise UserError(
            f"one request can need {longest} tokens of KV cache but the pool holds {budget.capacity_tokens}; "
            "lower --output-tokens or --repetition-share, or pick a device with more memory"
        )
    cached = CachedTimer(timer, context_quantum=context_quantum)
    overhead = float(getattr(timer, "request_overhead_s", 0.0))
    run = run_engine(
        mix=mix,
        load=load,
        timer=cached,
        settings=settings,
        kv_blocks=budget.blocks,
        seed=seed,
        request_overhead_s=overhead,
    )
    skipped = skip_first if skip_first < len(run.records) else 0  # (a run that is all burst: its latencies are all)
    records = run.records[skipped:]
    ttft = [r.first_token_s - r.arrival_s for r in records]
    tpot = [(r.finish_s - r.first_token_s) / (r.output_tokens - 1) for r in records if r.output_tokens > 1]
    e2e = [r.finish_s - r.arrival_s for r in records]
    records = run.records
    peak_blocks = max((s.kv_blocks_used for s in run.timeline), default=0)
    metrics: dict[str, Any] = {"model": model, **(describe or {})}
    metrics |= {
        "load": {
            "requests": load.requests,
            "concurrency": load.concurrency,
            "rate": load.rate,
            "seed": seed,
            "latency_skips_first": skipped,
            "all_in_opening_burst": skip_first > 0 and not skipped,
        },
        "requests": mix.describe(),
        "throughput": _throughput(run),
        "ttft_ms": summary_stats(ttft),
        "tpot_ms": summary_stats(tpot),
        "e2e_ms": summary_stats(e2e),
        "memory": budget.as_dict() | {"kv_peak_usage": round(peak_blocks / budget.blocks, 4)},
        "preemptions": run.preemptions,
        "scheduler": settings.as_dict(),
        "expected_error": trust_line(settings.runtime, device_id=metrics.get("device"), model=model),
        "engine": {
            "iterations": run.iterations,
            "makespan_s": round(run.makespan_s, 6),
            "timer_calls": run.timer_calls,
            "context_quantum": context_quantum,
            "request_overhead_ms": round(overhead * 1e3, 3),
            "vision_runs": run.vision_runs,
            "looped_requests": sum(1 for r in records if r.looped),
            "mean_running": round(run.running_area / run.makespan_s if run.makespan_s > 0 else 0.0, 3),
            "mean_in_system": round(run.in_system_area / run.makespan_s if run.makespan_s > 0 else 0.0, 3),
        },
    }
    return SimulationResult(run=run, metrics=metrics)


def _max_len(lengths: object) -> int:
    return lengths if isinstance(lengths, int) else max(getattr(lengths, "values", (0,)))
