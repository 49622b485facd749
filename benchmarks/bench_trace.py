"""Benchmark the meta-device tracer: time and peak RSS of the standard workload, the ratio against the naive
method (torch's FlopCounterMode over the prefill and every decode step), and the cost of long generations.

Run: ``python benchmarks/bench_trace.py`` (add ``--naive-steps K`` to time K naive decode steps and extrapolate
to all of them; the default runs them all).  Prints numbers and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload, preset_workload

MODEL = "deepseek-ocr-v1-base"
WORKLOAD = "dsocr-standard-v1"


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def naive(model: Any, work: Workload, steps: int | None) -> tuple[float, int, int]:
    """FlopCounterMode over the prefill and decode steps 1..N-1 on one growing cache: (seconds, steps run, FLOPs)."""
    source = resolve_model_source(MODEL)
    inputs = source.make_inputs(work)
    routing = RoutingModel.balanced()
    cache = model.new_cache(batch_size=inputs.batch_size, max_len=inputs.cache_len)
    n = inputs.num_decode_steps if steps is None else min(steps, inputs.num_decode_steps)
    counter = FlopCounterMode(display=False)
    start = time.perf_counter()
    with torch.no_grad(), counter:
        model(**inputs.prefill.kwargs(), past_key_values=cache, routing=routing)
        for i in range(1, n + 1):
            model(**inputs.decode_step(i).kwargs(), past_key_values=cache, routing=routing)
    return time.perf_counter() - start, n, counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs for the fast timings")
    parser.add_argument("--naive-steps", type=int, default=None, help="naive decode steps to run (default: all)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    source = resolve_model_source(MODEL)
    work = preset_workload(WORKLOAD)
    build_s, model = _best(lambda: source.build(attn_implementation="sdpa"), 1)
    trace_workload(source, attrs.evolve(work, max_new_tokens=2), model=model)  # warm-up: lazy torch imports
    trace_s, result = _best(lambda: trace_workload(source, work, model=model), args.repeats)
    rss = _rss_mb()
    total_s = build_s + trace_s
    print(f"model build (meta, sdpa)              {build_s:8.3f} s")
    print(f"trace {WORKLOAD} (N={work.max_new_tokens})     {trace_s:8.3f} s   ({result.decode_method})")
    print(f"build + trace                         {total_s:8.3f} s   target <= 3 s")
    print(f"peak RSS after the trace              {rss:8.0f} MB  target <= 1500 MB")

    short_s, _ = _best(lambda: trace_workload(source, attrs.evolve(work, max_new_tokens=64), model=model), args.repeats)
    long_s, _ = _best(
        lambda: trace_workload(source, attrs.evolve(work, max_new_tokens=8192), model=model), args.repeats
    )
    print(f"trace N=64                            {short_s:8.3f} s")
    print(f"trace N=8192                          {long_s:8.3f} s   ratio {long_s / short_s:.3f} (target <= 1.1)")

    naive_s, ran, flops = naive(model, work, args.naive_steps)
    steps = work.max_new_tokens - 1
    if ran < steps:
        prefill_s, _, _ = naive(model, work, 0)
        naive_total = prefill_s + (naive_s - prefill_s) * steps / max(ran, 1)
        print(f"naive FlopCounterMode: prefill {prefill_s:.2f} s + {ran} steps {naive_s - prefill_s:.2f} s, ")
        print(f"  extrapolated to {steps} steps                  {naive_total:8.3f} s")
    else:
        naive_total = naive_s
        print(f"naive FlopCounterMode, prefill + {steps} steps    {naive_total:8.3f} s")
        traced = sum(result.node(s).cost.matmul_flops for s in ("vision", "projector", "prefill", "decode"))
        print(f"  FLOPs naive {flops} vs traced matmul {traced}: {'equal' if flops == traced else 'DIFFERENT'}")
    print(f"speed-up naive / trace                {naive_total / trace_s:8.1f} x  target >= 20 x")
    print(f"speed-up naive / (build + trace)      {naive_total / total_s:8.1f} x")


if __name__ == "__main__":
    main()
