"""torch's Python meta kernels deferred (``lazy_metas``): a trace without them equals one with them, the built-in
model's traces never load them, and whatever needs them loads them."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from stand_in_process import run_python

from llm_perf_opt.contracts.converter import to_json
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import preset_workload

_TRACES = """
import json, sys
import attrs
from llm_perf_opt.tracer.lazy_metas import defer_python_metas, python_metas_deferred
deferred = defer_python_metas()
import torch
from llm_perf_opt.contracts.converter import to_json
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import preset_workload
work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=5)
out = {"deferred": deferred, "prims": "torch._prims" in sys.modules}
for attention in ("flash", "eager"):
    result = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), work, attention=attention)
    out[attention] = json.loads(to_json(result))
out["still_deferred"] = python_metas_deferred()
print(json.dumps(out))
"""


def _run(script: str, *, ours: bool = True) -> Any:
    """The JSON the script printed last (in a fresh process: ``ours`` sets the CLI's opt-in)."""
    done = run_python(script, ours=ours)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def deferred_traces() -> dict[str, Any]:
    out: dict[str, Any] = _run(_TRACES)
    return out


def test_import_skips_python_metas_and_builtin_traces_never_load_them(deferred_traces: dict[str, Any]) -> None:
    assert deferred_traces["deferred"] is True
    assert deferred_traces["prims"] is False  # torch._prims comes only with torch._meta_registrations
    assert deferred_traces["still_deferred"] is True  # flash and eager traces of the built-in model needed none


@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_trace_without_python_metas_equals_trace_with_them(deferred_traces: dict[str, Any], attention: str) -> None:
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=5)
    here = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), work, attention=attention)  # type: ignore[arg-type]
    assert json.loads(to_json(here)) == deferred_traces[attention]


_ON_DEMAND = """
import json, sys
from llm_perf_opt.tracer.lazy_metas import defer_python_metas, python_metas_deferred, with_python_metas_on_demand
assert defer_python_metas()
import torch
from llm_perf_opt.tracer.counter import OpCounter
aten = torch.ops.aten
meta = torch.empty(5, 3, device="meta")
out = {}
counter = OpCounter(None)
counter._run(aten.add.Tensor, (meta, meta), {})
out["add"] = python_metas_deferred()  # a C++ meta kernel: nothing loaded
counter._run(aten.index_select.default, (torch.arange(4.0), 0, torch.tensor([1, 2])), {})
out["cpu"] = python_metas_deferred()  # a CPU op: nothing loaded
picked = counter._run(aten.index_select.default, (meta, 0, torch.empty(2, dtype=torch.long, device="meta")), {})
out["index_select"] = [python_metas_deferred(), list(picked.shape)]  # no C++ meta kernel: loaded first
print(json.dumps(out))
"""

_RETRIES = """
import json, sys
from llm_perf_opt.tracer.lazy_metas import defer_python_metas, python_metas_deferred, with_python_metas_on_demand
assert defer_python_metas()
import torch
calls = []
def needs_them():
    calls.append(python_metas_deferred())
    if python_metas_deferred():
        raise NotImplementedError("no meta kernel")
    return "done"
out = {"result": with_python_metas_on_demand(needs_them), "calls": calls}
assert defer_python_metas() is False  # loaded now: nothing to defer
out["attribute"] = callable(getattr(sys.modules["torch._meta_registrations"], "register_meta", None))
print(json.dumps(out))
"""

_ATTRIBUTE = """
import json, sys
from llm_perf_opt.tracer.lazy_metas import defer_python_metas, python_metas_deferred
assert defer_python_metas()
import torch
before = python_metas_deferred()
value = torch._meta_registrations.register_meta  # any attribute read loads the real module
print(json.dumps({"before": before, "after": python_metas_deferred(), "callable": callable(value)}))
"""


def test_counter_loads_them_before_an_op_that_may_need_one() -> None:
    out = _run(_ON_DEMAND)
    assert out == {"add": True, "cpu": True, "index_select": [False, [2, 3]]}


def test_a_run_that_raises_not_implemented_runs_again_with_them() -> None:
    out = _run(_RETRIES)
    assert out == {"result": "done", "calls": [True, False], "attribute": True}


def test_reading_the_placeholder_loads_the_real_module() -> None:
    assert _run(_ATTRIBUTE) == {"before": True, "after": False, "callable": True}


def test_only_our_processes_defer_and_only_before_torch() -> None:
    script = (
        "import json, sys\n"
        "from llm_perf_opt.tracer.lazy_metas import defer_python_metas\n"
        "first = defer_python_metas()\n"
        "import torch\n"
        "print(json.dumps([first, 'torch._prims' in sys.modules]))\n"
    )
    assert _run(script, ours=False) == [False, True]  # a library user's process: torch imports as always
    late = "import torch, json\nfrom llm_perf_opt.tracer.lazy_metas import defer_python_metas\n"
    assert _run(late + "print(json.dumps(defer_python_metas()))") is False  # torch already imported
