"""Global forward pre/post hooks that drive the explicit call stack of :class:`TraceState`.

The post hook is registered with ``always_call=True`` so a call that raises still pops its frame.  Modules that
are not part of the traced root (``named_modules()`` of the root) are ignored: their ops go to the enclosing
call.  Each call of a module is its own frame, so a module called twice is two calls.  A direct
``module.forward(x)`` call (upstream CLIP calls its attention and MLP that way) fires no hook and so is not a
call: its ops go to the caller, exactly as every hook-based tool (and the analytic model) sees it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils.hooks import RemovableHandle

from llm_perf_opt.tracer.state import TraceState

__all__ = ["CallHooks"]


class CallHooks:
    """Context manager installing the two global hooks for ``state``."""

    def __init__(self, state: TraceState) -> None:
        self.state = state
        self._handles: list[RemovableHandle] = []

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        info = self.state.infos.get(id(module))
        if info is not None and self.state.frames:
            self.state.push(info)

    def _post(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # normal path: (kwargs, output); torch's exception path calls global hooks as (module, args, output)
        info = self.state.infos.get(id(module))
        if info is not None and self.state.frames:
            kwargs, output = (rest[0], rest[1]) if len(rest) == 2 else ({}, rest[0] if rest else None)
            self.state.pop(info, args, kwargs, output)

    def __enter__(self) -> CallHooks:
        self._handles = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post, with_kwargs=True, always_call=True),
        ]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
