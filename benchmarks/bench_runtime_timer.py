"""Benchmark: runtime IterationTimer decode steps per second, against the itemised path in the same run.

A serving simulation calls ``iteration_s`` once per engine iteration with a new composition almost every time
(contexts grow), so the cache rarely hits. Times 2,000 distinct 32-sequence decode steps through ``iteration_s``
(folded per-row coefficients) and through ``decode_terms`` (the itemised sums reports use) on vLLM / H100. Run:

    python benchmarks/bench_runtime_timer.py [--repeat 3]

Prints microseconds per step of both and the speed-up (itemised / fast); exits 1 when the fast path is not at least
2x faster.
"""

from __future__ import annotations

import argparse
import sys
import time

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.perf.iteration import BatchComposition
from llm_perf_opt.runtimes import runtime_iteration_timer
from llm_perf_opt.workloads import preset_workload

STEPS = 2000
TARGET_SPEEDUP = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    args = parser.parse_args()
    timer = runtime_iteration_timer(
        runtime="vllm",
        config=DeepseekOCRConfig.base(),
        device="h100-sxm",
        workloads={"page": preset_workload("dsocr-standard-v1")},
    )
    fast = slow = float("inf")
    for rep in range(args.repeat):
        contexts = [tuple(800 + rep * STEPS + i + j for j in range(32)) for i in range(STEPS)]
        start = time.perf_counter()
        for ctx in contexts:
            timer.iteration_s(BatchComposition(decode_context=ctx))
        fast = min(fast, time.perf_counter() - start)
        start = time.perf_counter()
        for ctx in contexts:
            timer.decode_terms(contexts=ctx)
        slow = min(slow, time.perf_counter() - start)
    ratio = slow / fast
    print(f"iteration_s: {fast / STEPS * 1e6:.1f} us/step; itemised: {slow / STEPS * 1e6:.1f} us/step; x{ratio:.1f}")
    return 0 if ratio >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
