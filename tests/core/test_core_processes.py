"""pid_alive: this process runs, an exited one and non-positive numbers do not."""

from __future__ import annotations

import os
import subprocess

from llm_perf_opt.core.processes import pid_alive


def test_running_exited_and_impossible_processes() -> None:
    assert pid_alive(os.getpid())
    done = subprocess.Popen(["true"])
    done.wait()
    assert not pid_alive(done.pid)
    assert not pid_alive(0) and not pid_alive(-1)
