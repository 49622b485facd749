"""Keep ``torch._dynamo`` from being imported just because a trace ran a Python meta kernel - in our own processes.

Many of torch's Python reference kernels (the elementwise type-promotion wrapper, for one) are wrapped by
``torch._disable_dynamo``, whose first call imports all of ``torch._dynamo`` (about 1.5 s on a 2-core machine) only
to mark the kernel "do not compile" (it caches the mark on the kernel as ``__dynamo_disable``).  A trace never
compiles, so while one runs, :func:`without_dynamo_import` answers that import with a stand-in whose
``disable(fn)`` returns ``fn`` unchanged.

The stand-in is opt-in per process: the ``llm-perf-opt`` command line sets ``LLM_PERF_OPT_DYNAMO_STAND_IN=1``
(:data:`llm_perf_opt.tracer.DYNAMO_STAND_IN_ENV`) in its own environment, which the server it starts and that
server's worker processes inherit; a library user's process never gets it, and importing ``llm_perf_opt`` changes
no torch state.  When allowed, it lives only for the block: afterwards ``sys.modules`` and ``torch._dynamo`` are as
before, and the marks the stand-in handed out are taken back off the kernels, so a later ``torch.compile`` in the
same process imports the real ``torch._dynamo`` and marks them for real.  Nothing is replaced when
``torch._dynamo`` is already imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from llm_perf_opt.tracer import DYNAMO_STAND_IN_ENV

__all__ = ["dynamo_stand_in_allowed", "without_dynamo_import"]

_NAME = "torch._dynamo"
_MARK = "__dynamo_disable"  # the attribute torch._disable_dynamo caches the disabled kernel under


def dynamo_stand_in_allowed() -> bool:
    """Whether this process is one of ours (the CLI, or a server it started): ``$LLM_PERF_OPT_DYNAMO_STAND_IN`` is 1."""
    return os.environ.get(DYNAMO_STAND_IN_ENV) == "1"


class _StandIn(types.ModuleType):
    """``torch._dynamo`` for the length of one trace: ``disable(fn)`` is ``fn``, and it remembers whom it told."""

    def __init__(self) -> None:
        super().__init__(_NAME, "llm-perf-opt stand-in for torch._dynamo during a meta trace")
        self.marked: list[Callable[..., Any]] = []

    def disable(self, fn: Callable[..., Any] | None = None, recursive: bool = True, wrapping: bool = True) -> Any:
        """Stand-in for ``torch._dynamo.disable``: the function itself (a trace never compiles)."""
        if fn is None:
            return lambda f: f
        self.marked.append(fn)
        return fn

    def take_back_marks(self) -> None:
        """Remove the ``__dynamo_disable`` marks torch cached from this stand-in's answers."""
        for fn in self.marked:
            if getattr(fn, _MARK, None) is fn:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(fn, _MARK)
        self.marked.clear()


@contextlib.contextmanager
def without_dynamo_import() -> Iterator[None]:
    """While the block runs, ``import torch._dynamo`` yields a stand-in with a no-op ``disable`` (when allowed)."""
    if not dynamo_stand_in_allowed() or _NAME in sys.modules:
        yield
        return
    stand_in = _StandIn()
    sys.modules[_NAME] = stand_in
    had_attr = "_dynamo" in vars(torch)
    if not had_attr:
        torch._dynamo = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_NAME) is stand_in:
            del sys.modules[_NAME]
        if not had_attr and vars(torch).get("_dynamo") is stand_in:
            delattr(torch, "_dynamo")
        stand_in.take_back_marks()
