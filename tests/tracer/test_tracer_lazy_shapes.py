"""The symbolic-shapes and sympy stand-ins: only in our own processes, only for a trace, torch's answers for every
value, and the real modules afterwards."""

from __future__ import annotations

from stand_in_process import run_python

OUR_PROCESS = """
import sys
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload

r = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
assert r.root.cost.matmul_flops > 0
assert "sympy" not in sys.modules, "the trace imported sympy"
assert "torch.fx.experimental.symbolic_shapes" not in sys.modules, "the stand-in leaked past the trace"
import torch.fx.experimental
assert "symbolic_shapes" not in vars(torch.fx.experimental), "the stand-in is left on the parent package"
import sympy
from torch.fx.experimental.symbolic_shapes import expect_true, ShapeEnv
assert hasattr(sympy, "Symbol") and sympy.__file__.endswith("__init__.py")
print("ok")
"""

STAND_IN_ANSWERS = """
import sys
import torch
from llm_perf_opt.tracer.lazy_shapes import without_symbolic_shapes_import

with without_symbolic_shapes_import():
    import sympy
    from torch.fx.experimental.symbolic_shapes import (
        expect_true, guard_or_false, guard_size_oblivious, has_guarding_hint, is_nested_int, sym_and, sym_eq,
    )
    assert type(sys.modules["sympy"]).__name__ == "_SympyStandIn"
    assert not isinstance(1, sympy.Basic)
    assert expect_true(True) is True and guard_or_false(False) is False and guard_size_oblivious(True) is True
    assert sym_eq((2, 3), [2, 3]) is True and sym_eq((2, 3), (2,)) is False and sym_eq(4, 5) is False
    assert sym_and(True, False) is False and sym_and(True) is True
    assert has_guarding_hint(7) is True and is_nested_int(7) is False
    assert "sympy" not in sys.modules or type(sys.modules["sympy"]).__name__ == "_SympyStandIn"
    try:
        expect_true(1)  # not a bool: torch's own helper answers (and refuses it)
    except AssertionError:
        pass
    else:
        raise SystemExit("expect_true(1) was accepted")
    assert type(sys.modules["torch.fx.experimental.symbolic_shapes"]).__name__ == "module", "real module not loaded"
    import sympy.core  # a submodule: the real sympy takes over
    assert hasattr(sys.modules["sympy"], "Symbol")
print("ok")
"""


def test_in_our_process_a_trace_imports_no_sympy_and_leaves_nothing_behind() -> None:
    done = run_python(OUR_PROCESS, ours=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_the_stand_in_answers_as_torch_and_hands_over_to_the_real_modules() -> None:
    done = run_python(STAND_IN_ANSWERS, ours=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_a_library_process_gets_no_stand_in() -> None:
    script = (
        "import sys\nfrom llm_perf_opt.tracer.lazy_shapes import without_symbolic_shapes_import\n"
        "with without_symbolic_shapes_import():\n"
        "    assert 'sympy' not in sys.modules and 'torch.fx.experimental.symbolic_shapes' not in sys.modules\n"
        "print('ok')"
    )
    done = run_python(script, ours=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
