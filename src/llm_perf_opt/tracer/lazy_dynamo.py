"""Keep ``torch._dynamo`` from being imported just because a trace ran a Python meta kernel.

Many of torch's Python reference kernels (the elementwise type-promotion wrapper, for one) are wrapped by
``torch._disable_dynamo``, whose first call imports all of ``torch._dynamo`` (about 1.5 s on a 2-core machine) only
to mark the kernel "do not compile".  A trace never compiles, so while one runs this module answers that import
with a stand-in whose ``disable(fn)`` returns ``fn`` unchanged.  The stand-in is removed afterwards, so code that
really uses ``torch.compile`` later in the same process imports the real ``torch._dynamo`` as usual; kernels
marked during the trace stay plain functions, which only means dynamo would trace into them.

Nothing is replaced when ``torch._dynamo`` is already imported.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["without_dynamo_import"]

_NAME = "torch._dynamo"


def _disable(fn: Callable[..., Any] | None = None, recursive: bool = True, wrapping: bool = True) -> Any:
    """Stand-in for ``torch._dynamo.disable``: the function itself (a trace never compiles)."""
    if fn is None:
        return lambda f: f
    return fn


@contextlib.contextmanager
def without_dynamo_import() -> Iterator[None]:
    """While the block runs, ``import torch._dynamo`` yields a stand-in with a no-op ``disable``."""
    if _NAME in sys.modules:
        yield
        return
    stand_in = types.ModuleType(_NAME, "llm-perf-opt stand-in for torch._dynamo during a meta trace")
    stand_in.disable = _disable  # type: ignore[attr-defined]
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
