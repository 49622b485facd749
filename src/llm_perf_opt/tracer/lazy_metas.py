"""Let ``import torch`` skip torch's Python meta kernels in our own processes, and load them the moment one is needed.

``import torch`` ends by importing ``torch._meta_registrations``, which imports ``torch._decomp`` and ``torch._prims``
and registers about a thousand Python meta kernels: about 0.35 s of the 1.3 s import on the 2-core machine.  A trace
of the built-in model needs none of them: its hot ops take the fast path (:mod:`llm_perf_opt.tracer.fastmeta`), the
others have C++ meta kernels or are views.  :func:`defer_python_metas`, called before torch is imported, puts a
placeholder in ``sys.modules`` so the import skips that module; :func:`load_python_metas` imports the real one
(the placeholder steps aside), after which torch is exactly as if nothing had been deferred.

When the real module is loaded, without anyone having to know:

- the op counter (:mod:`llm_perf_opt.tracer.counter`) loads it before running any op that might have a Python meta
  kernel (:func:`runs_without_python_meta` is false), and when an op raises ``NotImplementedError``;
- a trace that raises ``NotImplementedError`` outside the counter (a model built on meta) is run again after
  loading (:func:`with_python_metas_on_demand`);
- any attribute read from the placeholder (``torch._meta_registrations.x``, ``from torch._meta_registrations
  import x``) loads it and answers from the real module.

Opt-in per process: only the ``llm-perf-opt`` command line (the commands that never run a model on a real device)
and the background batch-basis process call :func:`defer_python_metas`, and only while torch is not yet imported
and ``$LLM_PERF_OPT_DYNAMO_STAND_IN`` is 1 (:mod:`llm_perf_opt.tracer.lazy_dynamo`).  A library user's process
never gets it.  This module does not import torch (it must run before torch is imported).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from llm_perf_opt.tracer import DYNAMO_STAND_IN_ENV

__all__ = [
    "NEVER_PYTHON_META",
    "SAME_WITHOUT_PYTHON_META",
    "defer_python_metas",
    "load_python_metas",
    "python_metas_deferred",
    "python_metas_on_demand",
    "runs_without_python_meta",
    "with_python_metas_on_demand",
]

_NAME = "torch._meta_registrations"
_LOCK = threading.Lock()
_T = TypeVar("_T")
_P = ParamSpec("_P")

NEVER_PYTHON_META = frozenset(
    {
        "aten::empty_strided",
        "aten::clone",
        "aten::_to_copy",
        "aten::copy_",
        "aten::constant_pad_nd",
        "aten::rot90",
        "aten::as_strided_scatter",
    }
)
"""Ops ``torch._meta_registrations.activate_meta`` never gives a Python meta kernel although it holds one (torch
2.13's exclusion list, ``torch/_meta_registrations.py``): their C++ kernels run on meta either way."""

SAME_WITHOUT_PYTHON_META = frozenset({"aten::mul.Scalar"})
"""Ops whose C++ composite kernel gives on meta what their Python meta kernel gives: ``mul.Scalar`` wraps the scalar
and calls ``mul.Tensor``, whose C++ meta kernel (TensorIterator) lays out the output as the Python reference
emulates, non-dense operands included.  Checked by the suite: traces with the Python meta kernels deferred equal
those with them loaded (eager attention runs this op on a transposed tensor)."""


class _Placeholder(types.ModuleType):
    """``torch._meta_registrations`` until it is needed: reading any attribute loads the real module."""

    def __init__(self) -> None:
        super().__init__(_NAME, "llm-perf-opt placeholder: torch's Python meta kernels, loaded on first need")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(load_python_metas(), name)


def defer_python_metas() -> bool:
    """Before torch is imported (in one of our processes): make ``import torch`` skip its Python meta kernels.
    Returns whether they are deferred now."""
    if python_metas_deferred():
        return True
    if "torch" in sys.modules or _NAME in sys.modules or os.environ.get(DYNAMO_STAND_IN_ENV) != "1":
        return False
    sys.modules[_NAME] = _Placeholder()
    return True


def python_metas_deferred() -> bool:
    """Whether torch's Python meta kernels are deferred and not loaded yet."""
    return isinstance(sys.modules.get(_NAME), _Placeholder)


def load_python_metas() -> types.ModuleType:
    """Import ``torch._meta_registrations`` for real (once; thread-safe) and return it."""
    with _LOCK:
        if isinstance(sys.modules.get(_NAME), _Placeholder):
            del sys.modules[_NAME]
        # importlib (not an import statement): the module is only named at run time, after the placeholder left
        return importlib.import_module(_NAME)


def runs_without_python_meta(op: Any) -> bool:
    """Whether aten op ``op`` (an ``OpOverload``) runs on meta exactly as with torch's Python meta kernels loaded:
    it is a view (never given one), on :data:`NEVER_PYTHON_META` or :data:`SAME_WITHOUT_PYTHON_META`, or has a
    C++ meta kernel of its own (torch's reference for the output's shape, dtype and strides, which the Python
    kernel emulates)."""
    torch = sys.modules["torch"]
    name = op.name()
    if op.is_view or name in NEVER_PYTHON_META or name in SAME_WITHOUT_PYTHON_META:
        return True
    return bool(torch._C._dispatch_has_kernel_for_dispatch_key(name, "Meta"))


def python_metas_on_demand(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``fn`` run through :func:`with_python_metas_on_demand` (a decorator)."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return with_python_metas_on_demand(lambda: fn(*args, **kwargs))

    return run


def with_python_metas_on_demand(run: Callable[[], _T]) -> _T:
    """``run()``; if it raises ``NotImplementedError`` while the Python meta kernels are deferred, load them and
    ``run()`` again (a meta trace has no side effects to undo)."""
    try:
        return run()
    except NotImplementedError:
        if not python_metas_deferred():
            raise
    load_python_metas()
    return run()
