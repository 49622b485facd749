"""End-to-end `llm-perf-opt analyze`: process start to files written, as a user runs it.

Usage: ``python benchmarks/bench_analyze.py [--repeats 3]``

Targets (issue 6): the standard workload in <= 8 s on a 2-core machine; 8192 new tokens <= 1.2x of 64 new tokens.
Each run is a fresh process (the user's experience: imports, model build, trace, render, write).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 8.0
TARGET_RATIO = 1.2


def _run(extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "llm_perf_opt.cli", "analyze", "--quiet", "--out", str(Path(tmp) / "r"), *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "standard (N=512)": [],
        "N=64": ["--max-new-tokens", "64"],
        "N=8192": ["--max-new-tokens", "8192"],
    }
    medians = {}
    for name, extra in cases.items():
        times = [_run(extra) for _ in range(args.repeats)]
        medians[name] = statistics.median(times)
        print(f"{name:18s} median {medians[name]:6.2f} s  runs {', '.join(f'{t:.2f}' for t in times)}")
    std = medians["standard (N=512)"]
    ratio = medians["N=8192"] / medians["N=64"]
    print(f"standard workload: {std:.2f} s vs target {TARGET_S:.1f} s -> {std / TARGET_S:.2f}x of the budget")
    print(f"8192 / 64 new tokens: {ratio:.3f}x (target <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
