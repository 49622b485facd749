"""The op counter: a ``TorchDispatchMode`` that sees every aten op, and a ``TorchFunctionMode`` that turns
``F.scaled_dot_product_attention`` into one fused op.

On meta, SDPA runs its unfused math decomposition (bmm, softmax, bmm); a byte counter that saw those pieces would
charge the L x S score matrix as memory traffic.  With ``fuse_sdpa`` the function mode records the call as one
fused op (``sdpa_cost``) and returns an output with a flash kernel's layout ([B, L, H, Ev] in memory, so the
usual ``transpose(1, 2).reshape`` is a view) without running the decomposition.  Without it (the ``eager``
attention kind) the decomposition runs and is counted op by op, as an eager/math kernel executes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from llm_perf_opt.core.repeats import repeating_calls
from llm_perf_opt.tracer.fastmeta import FAST_META, fast_output, verify_output
from llm_perf_opt.tracer.hooks import CallHooks
from llm_perf_opt.tracer.lazy_metas import load_python_metas, python_metas_deferred, runs_without_python_meta
from llm_perf_opt.tracer.meta_memo import memo_key, remember, remembered_output
from llm_perf_opt.tracer.ops.io import OpCall, OpCounts, SchemaIndex, schema_index
from llm_perf_opt.tracer.ops.matmul import sdpa_cost
from llm_perf_opt.tracer.ops.registry import FRESH, resolve
from llm_perf_opt.tracer.ops.rule import Rule, counted
from llm_perf_opt.tracer.state import TraceState

__all__ = ["FUSED_SDPA_OP", "OpCounter", "SdpaFuser", "counting"]

FUSED_SDPA_OP = "F.scaled_dot_product_attention"
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_SDPA_FUNCS = {F.scaled_dot_product_attention, torch._C._nn.scaled_dot_product_attention}


def _fused_handler(op: OpCall) -> OpCounts:
    return sdpa_cost(
        query=op["query"],
        key=op["key"],
        value=op["value"],
        attn_mask=op["attn_mask"],
        is_causal=op["is_causal"],
        out=op.out,
    )


_FUSED_INDEX: SchemaIndex = {
    "query": (0, None),
    "key": (1, None),
    "value": (2, None),
    "attn_mask": (3, None),
    "is_causal": (4, False),
}
"""The fused SDPA call's arguments as :meth:`SdpaFuser._fused` records them (``is_causal`` by keyword)."""


_SDPA_RULE: Rule = counted(
    "attention",
    "fused SDPA: dense 2*BH*L*S*(E+Ev) FLOPs (causal-effective executed), softmax 5/score entry, "
    "reads Q K V (+mask), writes O",
    "attention",
    _fused_handler,
)


class OpCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Dispatch mode: run each op, then let :class:`TraceState` account for it (rules cached per overload)."""

    def __init__(self, state: TraceState, *, verify_fast_meta: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.state = state
        self.verify = verify_fast_meta
        self._rules: dict[Any, tuple[str, Rule, int, SchemaIndex]] = {}
        self._deferred = python_metas_deferred()
        self._no_python_meta: dict[Any, bool] = {}

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps __torch_dispatch__ in a dynamo-disable shim unless this says False; a trace never runs
        # torch.compile, and the shim costs a few microseconds per op (and a 3 s import of torch._dynamo)
        return False

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        # The accounting calls tensor methods (size, stride, untyped_storage, ...); with the SDPA fuser active each
        # would detour through its __torch_function__, so torch-function handling is off while an op is accounted.
        with _NO_TORCH_FUNCTION():
            kw = kwargs or {}
            out = fast_output(func, args, kw) if func in FAST_META else None
            if out is None:
                out = self._run(func, args, kw)
            elif self.verify:
                verify_output(func, out, func(*args, **kw))
            state = self.state
            if not state.frames:
                return out
            entry = self._rules.get(func)
            if entry is None:
                rule, aliasing = resolve(func)
                entry = self._rules[func] = (str(func), rule, aliasing, schema_index(func))
            state.record(entry[0], entry[1], entry[2], args, kw, out, entry[3])
            return out

    def _run(self, func: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        """The op's output as its meta kernel lays it out: remembered from an earlier call with the same operand
        layouts (:mod:`llm_perf_opt.tracer.meta_memo`; with ``verify``, checked against the kernel), else the
        kernel's (then remembered)."""
        key = memo_key(func, args, kw)
        if key is not None:
            out = remembered_output(key)
            if out is not None:
                if self.verify:
                    verify_output(func, out, self._kernel(func, args, kw))
                return out
        out = self._kernel(func, args, kw)
        if key is not None:
            remember(key, args, kw, out)
        return out

    def _kernel(self, func: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        """Run the op's own meta kernel; with torch's Python meta kernels deferred
        (:mod:`llm_perf_opt.tracer.lazy_metas`), load them first if the op might have one, or if it raises
        ``NotImplementedError``."""
        if self._deferred and not self._runs_without_python_meta(func) and _on_meta(args, kw):
            self._load_python_metas()
        try:
            return func(*args, **kw)
        except NotImplementedError:
            if not self._deferred:
                raise
        self._load_python_metas()
        return func(*args, **kw)

    def _runs_without_python_meta(self, func: Any) -> bool:
        known = self._no_python_meta.get(func)
        if known is None:
            known = self._no_python_meta[func] = runs_without_python_meta(func)
        return known

    def _load_python_metas(self) -> None:
        load_python_metas()
        self._deferred = False


def _on_meta(args: tuple[Any, ...], kw: dict[str, Any]) -> bool:
    """Whether the op runs on the meta device (a meta tensor operand, or ``device="meta"``), where a Python meta
    kernel could be its kernel; ops on real tensors (a CPU ``arange`` in model code) never need one."""
    device = kw.get("device")
    if device is not None and torch.device(device).type == "meta":
        return True
    for value in args:
        if isinstance(value, torch.Tensor):
            if value.is_meta:
                return True
        elif isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) and v.is_meta for v in value):
            return True
    return any(isinstance(v, torch.Tensor) and v.is_meta for v in kw.values())


class SdpaFuser(TorchFunctionMode):
    """Function mode: ``F.scaled_dot_product_attention`` becomes one fused op (see module docstring)."""

    def __init__(self, state: TraceState) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kw = kwargs or {}
        if func not in _SDPA_FUNCS or not self.state.frames:
            return func(*args, **kw)
        return self._fused(*args, **kw)

    def _fused(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        state = self.state
        # built with every dispatch mode off: the allocation is part of the fused op, not an op of its own
        with _disable_current_modes():
            out = _flash_layout_output(query, value)
        args = (query, key, value, attn_mask)
        state.record(FUSED_SDPA_OP, _SDPA_RULE, FRESH, args, {"is_causal": bool(is_causal)}, out, _FUSED_INDEX)
        return out


def _flash_layout_output(query: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    shape = (*query.shape[:-1], value.shape[-1])
    if query.dim() == 4:
        b, h, length, ev = shape
        return query.new_empty((b, length, h, ev)).transpose(1, 2)
    return query.new_empty(shape)


@contextmanager
def counting(
    state: TraceState, *, fuse_sdpa: bool, verify_fast_meta: bool = False, replay_calls: bool = True
) -> Iterator[TraceState]:
    """Install the hooks, the dispatch counter and (if ``fuse_sdpa``) the SDPA fuser for the ``with`` body.

    ``verify_fast_meta`` also runs torch's meta kernel for every op the fast path builds, and raises on a mismatch
    (and replays nothing).  With ``state.replay``, repeated calls of pure modules are replayed from their tapes
    (:mod:`llm_perf_opt.tracer.replay`); with ``replay_calls``, repeated calls inside a module that its code marks
    (:func:`llm_perf_opt.core.repeats.repeatable`) too.
    """
    with ExitStack() as stack:
        stack.enter_context(CallHooks(state))
        if fuse_sdpa:
            stack.enter_context(SdpaFuser(state))
        stack.enter_context(OpCounter(state, verify_fast_meta=verify_fast_meta))
        if state.replay is not None and not verify_fast_meta:
            stack.enter_context(state.replay.installed())
        if replay_calls and not verify_fast_meta:
            stack.enter_context(repeating_calls(state.call_tapes))
        yield state
