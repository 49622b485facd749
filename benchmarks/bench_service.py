"""The HTTP service's what-ifs: the standard workload, then the same request at other batches, devices and output
lengths, with the background batch basis on and off (issue 19: a what-if answered in under a second).

Usage: ``python benchmarks/bench_service.py [--repeats 3] [--gap-s 6]``

Each repeat starts a fresh server (``llm-perf-opt serve`` on a free loopback port, its own report store and an empty
trace cache) and times, from the POST to the first 200 of the summary, a cold build of the standard workload, then -
``--gap-s`` seconds later (a person reading the first report; the background process keeps the basis meanwhile) -
``batch_size`` 64, then 300, another device, another output length.  The same sequence runs with
``LLM_PERF_OPT_PREPARE=0`` (no background basis: the first batch change traces, and builds the basis) in the same
repeat, alternating which goes first, so the machine's drift reaches both alike; each sequence waits for its
background process to end before the server stops.  Prints the medians per request and
the ratio of the first batch change with the basis off to on.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from llm_perf_opt.analysis.prepare import queue_worker
from llm_perf_opt.tracecache import TraceCache

STANDARD = {
    "model_id": "deepseek-ai/DeepSeek-OCR",
    "model_variant": "deepseek-ocr-v1-base",
    "workload_profile_id": "dsocr-standard-v1",
}
WHAT_IFS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("batch 64 (first batch change)", {"batch_size": 64}),
    ("batch 300", {"batch_size": 300}),
    ("device b200", {"device": "b200"}),
    ("max_new_tokens 4000", {"max_new_tokens": 4000}),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_request(client: httpx.Client, extra: Mapping[str, Any]) -> float:
    """Seconds from the POST to the first 200 of the report's summary."""
    started = time.monotonic()
    posted = client.post("/analytic/deepseek-ocr/run", json={**STANDARD, **extra})
    posted.raise_for_status()
    report = posted.json()["report_id"]
    while (got := client.get(f"/analytic/deepseek-ocr/{report}/summary")).status_code == 409:
        time.sleep(0.02)
    got.raise_for_status()
    return time.monotonic() - started


def one_sequence(*, prepare: bool, gap_s: float) -> dict[str, float]:
    """A fresh server and cache: the standard workload, then the what-ifs; seconds per request."""
    port = free_port()
    with tempfile.TemporaryDirectory() as store, tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "LLM_PERF_OPT_CACHE_DIR": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not prepare:
            env["LLM_PERF_OPT_PREPARE"] = "0"
        else:
            env.pop("LLM_PERF_OPT_PREPARE", None)
        argv = [sys.executable, "-m", "llm_perf_opt.cli", "serve", "--store", store, "--port", str(port)]
        server = subprocess.Popen([*argv, "--log-level", "warning"], env=env, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                wait_until_up(client)
                times = {"standard (cold)": timed_request(client, {})}
                time.sleep(gap_s)
                for name, extra in WHAT_IFS:
                    times[name] = timed_request(client, extra)
                wait_for_background(Path(cache))  # none of it overlaps the next sequence
                return times
        finally:
            server.terminate()
            server.wait(30)


def wait_for_background(cache: Path) -> None:
    """Until no process works the cache's batch basis queue (at most 10 minutes)."""
    deadline = time.monotonic() + 600
    while queue_worker(TraceCache(cache).queue) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_until_up(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gap-s", type=float, default=6.0, help="seconds between the cold build and the what-ifs")
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for i in range(args.repeats):
        for prepare in (True, False) if i % 2 == 0 else (False, True):
            runs[prepare].append(one_sequence(prepare=prepare, gap_s=args.gap_s))
            print(f"repeat {i + 1}, basis {'on' if prepare else 'off'}: done", file=sys.stderr)
    print(f"{'request':34s} {'basis on':>10s} {'basis off':>10s}   (medians of {args.repeats}, seconds)")
    for name in runs[True][0]:
        on = statistics.median(r[name] for r in runs[True])
        off = statistics.median(r[name] for r in runs[False])
        print(f"{name:34s} {on:10.2f} {off:10.2f}")
    first = WHAT_IFS[0][0]
    ratio = statistics.median(r[first] for r in runs[False]) / statistics.median(r[first] for r in runs[True])
    print(f"first batch change, basis off / on: {ratio:.1f}x")


if __name__ == "__main__":
    main()
