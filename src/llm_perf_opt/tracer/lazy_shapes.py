"""Keep sympy from being imported just because a trace ran a Python meta kernel - in our own processes.

``torch._check`` (called by many of torch's Python meta kernels and references) and several kernels themselves
import ``torch.fx.experimental.symbolic_shapes``, which imports sympy (about 0.3 s and 34 MB of resident memory on
the 2-core machine), only to evaluate helpers such as ``expect_true(cond)`` or ``guard_or_false(cond)``, which in a
meta trace with concrete shapes always receive plain ``bool`` and ``int`` values; torch's type promotion also
imports sympy itself, only for an ``isinstance(x, sympy.Basic)`` check.  While a trace runs,
:func:`without_symbolic_shapes_import` answers the first import with a stand-in holding those helpers for plain
values, with torch's own semantics (``expect_true(True)`` is ``True``; anything but a ``bool`` goes to torch's
own helper), and ``import sympy`` with a stand-in whose ``Basic`` no object is an instance of (true of every object
while sympy was never imported).  Any other value (a ``SymBool`` or ``SymInt``), any other name or a submodule
loads the real module and answers from it, so nothing is ever answered differently from torch.

Opt-in per process like the ``torch._dynamo`` stand-in (:mod:`llm_perf_opt.tracer.lazy_dynamo`, the same
``$LLM_PERF_OPT_DYNAMO_STAND_IN``); it lives only for the block, and afterwards ``sys.modules`` and the parent
package are as before.  Nothing is replaced when the real module is already imported.
"""

from __future__ import annotations

import contextlib
import importlib
import operator
import sys
import types
from collections.abc import Iterator
from typing import Any

from llm_perf_opt.tracer.lazy_dynamo import dynamo_stand_in_allowed

__all__ = ["without_symbolic_shapes_import"]

_PARENT = "torch.fx.experimental"
_NAME = f"{_PARENT}.symbolic_shapes"
_CHILD = "symbolic_shapes"


class _StandIn(types.ModuleType):
    """``torch.fx.experimental.symbolic_shapes`` for plain values; the real module for anything else."""

    def __init__(self) -> None:
        super().__init__(_NAME, "llm-perf-opt stand-in for torch.fx.experimental.symbolic_shapes during a meta trace")
        self.real: types.ModuleType | None = None
        for name in ("expect_true", "guard_or_false", "guard_or_true", "guard_size_oblivious", "statically_known_true"):
            setattr(self, name, self._plain_bool(name))
        self.sym_eq = self._sym_eq
        self.is_nested_int = self._plain_answer("is_nested_int", (int, float, bool), lambda _: False)
        self.has_guarding_hint = self._plain_answer("has_guarding_hint", (int, float, bool), lambda _: True)
        self.guarding_hint_or_throw = self._plain_answer("guarding_hint_or_throw", (int, bool), lambda a: a)
        self.sym_and = self._fold(operator.and_, "sym_and")
        self.sym_or = self._fold(operator.or_, "sym_or")

    def load_real(self) -> types.ModuleType:
        """Import the real module (the stand-ins leave ``sys.modules`` first: it imports sympy) and keep it."""
        if self.real is None:
            _retire_sympy()
            if sys.modules.get(_NAME) is self:
                del sys.modules[_NAME]
            parent = sys.modules.get(_PARENT)
            if parent is not None and vars(parent).get(_CHILD) is self:
                delattr(parent, _CHILD)
            self.real = importlib.import_module(_NAME)
        return self.real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.load_real(), name)

    def _plain_bool(self, name: str) -> Any:
        def helper(a: Any, *rest: Any) -> Any:
            if type(a) is bool:
                return a
            return getattr(self.load_real(), name)(a, *rest)

        helper.__name__ = name
        return helper

    def _plain_answer(self, name: str, types_: tuple[type, ...], answer: Any) -> Any:
        def helper(a: Any, *rest: Any) -> Any:
            if type(a) in types_ and not rest:
                return answer(a)
            return getattr(self.load_real(), name)(a, *rest)

        helper.__name__ = name
        return helper

    def _sym_eq(self, x: Any, y: Any) -> Any:
        if _plain(x) and _plain(y):
            if isinstance(x, tuple | list) and isinstance(y, tuple | list):
                return len(x) == len(y) and all(a == b for a, b in zip(x, y, strict=False))
            if not isinstance(x, tuple | list) and not isinstance(y, tuple | list):
                return x == y
        return self.load_real().sym_eq(x, y)

    def _fold(self, op: Any, name: str) -> Any:
        def helper(x: Any, *others: Any) -> Any:
            if not all(type(v) is bool for v in (x, *others)):
                return getattr(self.load_real(), name)(x, *others)
            for y in others:
                x = op(x, y)
            return x

        helper.__name__ = name
        return helper


class _Never:
    """No object is an instance: the ``sympy.Basic`` of a process that never imported sympy."""


class _SympyStandIn(types.ModuleType):
    """``sympy`` while it is not imported: ``Basic`` for the ``isinstance(x, sympy.Basic)`` checks of torch's
    type promotion (false for every object, as no sympy object can exist yet); any other name, or a submodule
    import (``__path__``), imports the real sympy."""

    def __init__(self) -> None:
        super().__init__("sympy", "llm-perf-opt stand-in for sympy during a meta trace")
        self.Basic = _Never

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__path__":
            raise AttributeError(name)
        _retire_sympy()
        return getattr(importlib.import_module("sympy"), name)


def _retire_sympy() -> None:
    if isinstance(sys.modules.get("sympy"), _SympyStandIn):
        del sys.modules["sympy"]


def _plain(v: Any) -> bool:
    """A plain int or bool, or a list or tuple of them."""
    if isinstance(v, tuple | list):
        return all(type(e) in (int, bool) for e in v)
    return type(v) in (int, bool)


@contextlib.contextmanager
def without_symbolic_shapes_import() -> Iterator[None]:
    """While the block runs, ``torch.fx.experimental.symbolic_shapes`` is the plain-value stand-in (when allowed)."""
    parent = sys.modules.get(_PARENT)
    if not dynamo_stand_in_allowed() or _NAME in sys.modules or parent is None:
        yield
        return
    stand_in = _StandIn()
    sys.modules[_NAME] = stand_in
    if "sympy" not in sys.modules:
        sys.modules["sympy"] = _SympyStandIn()
    had_attr = _CHILD in vars(parent)
    if not had_attr:
        setattr(parent, _CHILD, stand_in)
    try:
        yield
    finally:
        _retire_sympy()
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
        if not had_attr and vars(parent).get(_CHILD) is stand_in:
            delattr(parent, _CHILD)
