"""Time and memory of building the full DeepSeek-OCR v1 module tree on the meta device.

Usage: ``python benchmarks/bench_build_model.py [--repeats N] [--variant deepseek-ocr-v1-base]``

Prints the import time of the model package, the first build (one-time costs included) and the median of the
following builds (wall clock and process CPU time), and the process's peak RSS (``ru_maxrss``) after building.
Each build runs in this one process; the peak RSS therefore includes torch itself (about 200 MB of it).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="builds after the first (default 5)")
    parser.add_argument("--variant", default="deepseek-ocr-v1-base", help="model source name")
    args = parser.parse_args(argv)

    rss_start = _peak_rss_mb()
    start = time.perf_counter()
    import torch

    from llm_perf_opt.sources import resolve_model_source

    import_s = time.perf_counter() - start
    rss_imported = _peak_rss_mb()
    source = resolve_model_source(args.variant)

    walls, cpus = [], []
    for _ in range(1 + args.repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        model = source.build(device="meta", dtype=torch.bfloat16)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    params = sum(p.numel() for p in model.parameters())
    modules = sum(1 for _ in model.modules())

    print(f"variant            {args.variant}  ({params:,} parameters, {modules} modules, torch {torch.__version__})")
    print(f"import             {import_s:.3f} s (torch + llm_perf_opt.sources)")
    print(f"first build        {walls[0]:.3f} s wall, {cpus[0]:.3f} s CPU")
    print(
        f"later builds       median {statistics.median(walls[1:]):.3f} s wall, "
        f"{statistics.median(cpus[1:]):.3f} s CPU (min {min(walls[1:]):.3f} s, {args.repeats} builds)"
    )
    peak = _peak_rss_mb()
    print(f"peak RSS           {peak:.0f} MB (before import {rss_start:.0f} MB, after import {rss_imported:.0f} MB)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
