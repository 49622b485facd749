"""The ``llm-perf-opt`` entry point: a reader that stops reading (``| head -1``) neither fails a command nor cuts it
short - every command runs to its end, exits 0 and prints nothing about the closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MEASUREMENTS = Path(__file__).parents[2] / "benchmarks" / "measurements"


def run_with_stdout_closed(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``llm-perf-opt ARGS`` with stdout a pipe whose reading end is already closed: its first write fails (EPIPE),
    as when ``head -1`` has read its line and gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "llm_perf_opt.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            cwd=tmp_path,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["devices"], ["workloads"], ["--help"]])
def test_a_closed_stdout_exits_0_quietly(args: list[str], tmp_path: Path) -> None:
    done = run_with_stdout_closed(args, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")


def test_calibrate_writes_its_profile_and_exits_0_when_nobody_reads(tmp_path: Path) -> None:
    """The QA case, ``calibrate --quiet --out p.yaml FILES | head -1``, on the CPU measurements of the tiny model."""
    files = [str(MEASUREMENTS / f"cpu-tiny-tiny-512x512-fp32-{attention}.json") for attention in ("eager", "sdpa")]
    done = run_with_stdout_closed(["calibrate", "--quiet", "--out", "p.yaml", *files], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["device_id"] == "cpu"
