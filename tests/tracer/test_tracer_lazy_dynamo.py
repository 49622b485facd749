"""The torch._dynamo stand-in: only in our own processes, only for a trace, and nothing of it left afterwards."""

from __future__ import annotations

from stand_in_process import run_python

from llm_perf_opt.tracer import DYNAMO_STAND_IN_ENV

CLI_PROCESS = """
import gc, sys, types
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer import lazy_dynamo
from llm_perf_opt.tracer.trace import trace_workload

answered = []
take_back = lazy_dynamo._StandIn.take_back_marks
def spy(self):
    answered.append(len(self.marked))
    take_back(self)
lazy_dynamo._StandIn.take_back_marks = spy

r = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
assert r.root.cost.matmul_flops > 0
assert "torch._dynamo" not in sys.modules, "the trace imported torch._dynamo"
assert answered and answered[0] > 0, "the stand-in answered no kernel (nothing was tested)"
left = [f for f in gc.get_objects() if isinstance(f, types.FunctionType) and f.__dict__.get("__dynamo_disable") is f]
assert not left, f"stand-in marks left on {len(left)} kernel(s)"
import torch
import torch._dynamo
assert hasattr(torch._dynamo, "optimize"), "the stand-in leaked past the trace"
assert torch._dynamo.__file__.endswith("__init__.py")
print("ok")
"""

LIBRARY_PROCESS = """
import importlib, pkgutil, sys
import torch
before = (set(sys.modules) >= {"torch._dynamo"}, torch._C._len_torch_dispatch_stack(),
          torch._C._len_torch_function_stack(), torch.autocast, set(vars(torch)) >= {"_dynamo"})
import llm_perf_opt
for info in pkgutil.walk_packages(llm_perf_opt.__path__, "llm_perf_opt."):
    if not info.name.startswith(("llm_perf_opt.cli", "llm_perf_opt.service")) and info.name.count(".") <= 2:
        importlib.import_module(info.name)
after = (set(sys.modules) >= {"torch._dynamo"}, torch._C._len_torch_dispatch_stack(),
         torch._C._len_torch_function_stack(), torch.autocast, set(vars(torch)) >= {"_dynamo"})
assert before == after, (before, after)
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
stand_in = sys.modules.get("torch._dynamo")
assert stand_in is None or hasattr(stand_in, "optimize"), "a library process got the stand-in"
print("ok")
"""


def test_in_our_process_a_trace_uses_the_stand_in_and_leaves_nothing_behind() -> None:
    done = run_python(CLI_PROCESS, ours=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_a_library_import_and_trace_change_no_torch_state() -> None:
    done = run_python(LIBRARY_PROCESS, ours=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_the_command_line_marks_its_process_as_ours() -> None:
    probe = (
        "import os, sys\n"
        "from llm_perf_opt.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        f"print(os.environ.get('{DYNAMO_STAND_IN_ENV}'), 'torch' in sys.modules)"
    )
    done = run_python(probe, ours=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["1", "False"]
