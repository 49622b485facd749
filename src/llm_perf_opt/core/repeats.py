"""Repeated calls inside a module that a counting tracer may replay: the bridge between model code (a source's
forward) and the tracer, which do not import each other.

A forward that calls the same function many times with arguments of the same layouts - DeepSeek-OCR-2's fused
experts run one ``gate_up``/``down`` pair per expert, 64 a layer, inside one module, where no module boundary lets
the tracer's module replay (:mod:`llm_perf_opt.tracer.replay`) describe one expert - wraps each call in
:func:`repeatable`.  Outside a trace (or with replay off) it is the plain call; inside a trace pass the tracer counts
the first call of each key and layouts once and adds those counts again for the later ones (fresh outputs of the
recorded layouts), as if they had run.  Torch-free: it holds only the hook the tracer installs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["RepeatHook", "repeatable", "repeating_calls"]

T = TypeVar("T")

RepeatHook = Callable[[Callable[..., Any], tuple[Any, ...], Hashable], Any]
"""What the tracer installs: ``hook(call, args, key)`` returns what ``call(*args)`` returns (run, or replayed)."""

_HOOK: ContextVar[RepeatHook | None] = ContextVar("llm_perf_opt_repeat_hook", default=None)


def repeatable(call: Callable[..., T], *args: Any, key: Hashable) -> T:
    """``call(*args)``.  Under :func:`repeating_calls` (a trace pass that replays) a call whose ``key`` and arguments'
    layouts an earlier call in the same module of the same trace had is counted from that call's record instead of
    running.  ``key`` names what besides the arguments decides the ops ``call`` makes (a constant when nothing does:
    the arguments' layouts, and other objects by identity, are keyed by the tracer)."""
    hook = _HOOK.get()
    return call(*args) if hook is None else hook(call, args, key)


@contextlib.contextmanager
def repeating_calls(hook: RepeatHook) -> Iterator[None]:
    """For the block, :func:`repeatable` calls go through ``hook`` (the tracer's, for one pass)."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)
