"""A fresh Python process for the stand-in tests (torch._dynamo, symbolic shapes, sympy): ``ours`` sets the opt-in
our CLI and service set, otherwise it is a library user's process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llm_perf_opt.tracer import DYNAMO_STAND_IN_ENV

SRC = Path(__file__).resolve().parents[2] / "src"


def run_python(script: str, *, ours: bool) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``python -c`` on this checkout's sources (the stand-in opt-in set only when ``ours``)."""
    env = {k: v for k, v in os.environ.items() if k != DYNAMO_STAND_IN_ENV}
    env["PYTHONPATH"] = str(SRC)
    if ours:
        env[DYNAMO_STAND_IN_ENV] = "1"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
