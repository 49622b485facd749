"""Benchmark the meta-device tracer: time and peak RSS of the standard workload, the ratio against the naive
method (torch's FlopCounterMode over the prefill and every decode step), the cost of long generations, and what the
meta memo (:mod:`llm_perf_opt.tracer.meta_memo`) saves against tracing with it off - for v1 and, with transformers
>= 5.10.1 importable, DeepSeek-OCR-2.  This process loads torch's Python meta kernels (as an OCR-2 trace does; the
command line defers them for v1, so its v1 saving is smaller: see docs/architecture.md).

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

from llm_perf_opt.sources.deepseek_ocr2.config import MIN_TRANSFORMERS
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple
from llm_perf_opt.tracer.meta_memo import memo_off
from llm_perf_opt.tracer.trace import build_model, trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload, preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

MODEL = "deepseek-ocr-v1-base"
WORKLOAD = "dsocr-standard-v1"


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall-clock and best CPU (process) time over ``repeats`` runs; CPU time is steadier on a shared box."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def naive(model: Any, work: Workload, steps: int | None) -> tuple[float, float, int, int]:
    """FlopCounterMode over the prefill and decode steps 1..n on one growing cache: (wall s, cpu s, n, FLOPs)."""
    source = resolve_model_source(MODEL)
    inputs = source.make_inputs(work)
    routing = RoutingModel.balanced()
    cache = model.new_cache(batch_size=inputs.batch_size, max_len=inputs.cache_len)
    n = inputs.num_decode_steps if steps is None else min(steps, inputs.num_decode_steps)
    counter = FlopCounterMode(display=False)
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad(), counter:
        model(**inputs.prefill.kwargs(), past_key_values=cache, routing=routing)
        for i in range(1, n + 1):
            model(**inputs.decode_step(i).kwargs(), past_key_values=cache, routing=routing)
    return time.perf_counter() - start, time.process_time() - start_cpu, n, counter.get_total_flops()


def _row(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"{label:38s} {wall:9.3f} s {cpu:9.3f} s  {note}")


def memo_saving(name: str, work: Any, repeats: int) -> None:
    """The trace of ``work`` on model source ``name`` with the meta memo and with it off (the baseline), and the
    ratio; the two traces must be equal."""
    source = resolve_model_source(name)
    model = build_model(source, attention="flash")
    trace_workload(source, work, model=model)  # warm-up (lazy imports; the memo learns the layouts once)
    with memo_off():
        plain = _best(lambda: trace_workload(source, work, model=model), repeats)
    memo = _best(lambda: trace_workload(source, work, model=model), repeats)
    _row(f"trace {name}, meta memo off", plain[0], plain[1], "baseline")
    _row(f"trace {name}, meta memo on", memo[0], memo[1], "equal" if memo[2] == plain[2] else "DIFFERENT")
    print(f"  ratio memo on / off: wall {memo[0] / plain[0]:.2f}, cpu {memo[1] / plain[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs for the fast timings")
    parser.add_argument("--naive-steps", type=int, default=None, help="naive decode steps to run (default: all)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':38s} {'wall':>11s} {'cpu':>11s}")

    source = resolve_model_source(MODEL)
    work = preset_workload(WORKLOAD)
    build = _best(lambda: source.build(attn_implementation="sdpa"), 1)
    model = build[2]
    trace_workload(source, attrs.evolve(work, max_new_tokens=2), model=model)  # warm-up: lazy torch imports
    trace = _best(lambda: trace_workload(source, work, model=model), args.repeats)
    rss = _rss_mb()
    _row("model build (meta, sdpa)", build[0], build[1])
    _row(f"trace {WORKLOAD} (N={work.max_new_tokens})", trace[0], trace[1], trace[2].decode_method)
    _row("build + trace", build[0] + trace[0], build[1] + trace[1], "target <= 3 s")
    print(f"{'peak RSS after the trace':38s} {rss:9.0f} MB  target <= 1500 MB")

    short = _best(lambda: trace_workload(source, attrs.evolve(work, max_new_tokens=64), model=model), args.repeats)
    long = _best(lambda: trace_workload(source, attrs.evolve(work, max_new_tokens=8192), model=model), args.repeats)
    _row("trace N=64", short[0], short[1])
    _row("trace N=8192", long[0], long[1])
    print(f"  ratio N=8192 / N=64: wall {long[0] / short[0]:.3f}, cpu {long[1] / short[1]:.3f} (target <= 1.1)")

    memo_saving(MODEL, work, args.repeats)
    if version_tuple(installed_transformers() or "0") >= MIN_TRANSFORMERS:
        memo_saving("deepseek-ocr-2", Ocr2Workload.create(page=(1024, 1024), max_new_tokens=512), args.repeats)

    wall, cpu, ran, flops = naive(model, work, args.naive_steps)
    steps = work.max_new_tokens - 1
    if ran < steps:
        pre_wall, pre_cpu, _, _ = naive(model, work, 0)
        wall = pre_wall + (wall - pre_wall) * steps / max(ran, 1)
        cpu = pre_cpu + (cpu - pre_cpu) * steps / max(ran, 1)
        _row(f"naive: prefill + {ran} steps, scaled to {steps}", wall, cpu, "extrapolated")
    else:
        _row(f"naive: FlopCounterMode, prefill + {steps} steps", wall, cpu)
        traced = sum(trace[2].node(s).cost.matmul_flops for s in ("vision", "projector", "prefill", "decode"))
        print(f"  naive FLOPs {flops} vs traced matmul FLOPs {traced}: {'equal' if flops == traced else 'DIFFERENT'}")
    print(f"speed-up naive / trace: wall {wall / trace[0]:.1f} x, cpu {cpu / trace[1]:.1f} x  (target >= 20 x)")


if __name__ == "__main__":
    main()
