"""A trace never imports torch._dynamo (1.5 s), and the real module is importable afterwards."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
r = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
assert r.root.cost.matmul_flops > 0
assert "torch._dynamo" not in sys.modules, "the trace imported torch._dynamo"
import torch
import torch._dynamo
assert hasattr(torch._dynamo, "optimize"), "the stand-in leaked past the trace"
assert torch._dynamo.__file__.endswith("__init__.py")
print("ok")
"""


def test_trace_does_not_import_dynamo_and_leaves_the_real_module_importable() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
