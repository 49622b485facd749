"""Outputs of torch's meta kernels, remembered per op and operand layout.

A trace runs the same ops on the same layouts over and over: every decoder layer, every decode step, every batch of
a basis.  On the meta device an op's output depends on nothing but the op, the shapes, strides and dtypes of its
tensor operands and its other arguments (there are no values), so the first call's output describes every later
one.  The ops the fast path (:mod:`llm_perf_opt.tracer.fastmeta`) leaves to torch - elementwise ops on sliced,
transposed or chunked operands, mostly - run torch's meta kernel, in Python once ``torch._meta_registrations`` is
loaded (transformers loads it): 50-300 us a call, half of a DeepSeek-OCR-2 trace.  A remembered output is one
``empty_strided``.

Remembered only where that is exact: an op that is not a view, writes none of its operands and has no output shape
that depends on data (``torch.Tag.dynamic_output_shape``, ``data_dependent_output``); every tensor operand on meta
and of a real dtype; every other argument a plain value (numbers, strings, dtypes, devices, layouts, memory
formats, None, and lists of those or of strided tensors), the default dtype as it is (a Python float's type in
promotion); and every output a strided tensor of its own (a storage no operand or other output shares, at offset 0,
exactly as large as its strides need - what ``empty_strided`` makes).  Anything else runs torch's kernel every
time.  ``verify`` in the counter runs torch's kernel beside every remembered output
and raises on a difference (the test suite traces that way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from llm_perf_opt.tracer.ops.io import dense_bytes, tensors_in

__all__ = ["MEMO_LIMIT", "MetaMemo", "fresh_outputs", "memo_key", "memo_off", "remember", "remembered_output"]

MEMO_LIMIT = 10_000
"""The most outputs remembered at once; past it the memo starts over, so a long-lived process (the service) stays
bounded: a v1 trace adds about 30 layouts per new batch or page shape (72 at batch 1, 183 after batches 1, 3, 8, 64
and 1,024), each about 1.2 kB: at most about 12 MB."""

_META = torch.device("meta")
_Tensor = torch.Tensor
_PLAIN = (type(None), bool, int, float, str, torch.dtype, torch.device, torch.layout, torch.memory_format)
_DATA_DEPENDENT = (torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output)

MetaMemo = dict[tuple[Any, ...], tuple[Any, ...]]
"""(op, default dtype, its arguments' key, its keywords' key) -> its output's layout: ``(shape, stride, dtype)``
per tensor, in a ``("tuple", ...)`` or ``("list", ...)`` for several."""

_MEMO: MetaMemo = {}
_ELIGIBLE: dict[Any, bool] = {}
_STATE = {"on": True}


class _NotKeyableError(Exception):
    """An argument the key cannot describe: the op runs torch's kernel."""


def memo_key(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    """The key of one call of ``func`` (None when its output is not remembered: see the module docstring)."""
    if not _STATE["on"] or not _eligible(func):
        return None
    try:
        described = (_key(args), _key(tuple(sorted(kwargs.items()))) if kwargs else ())
    except _NotKeyableError:
        return None
    # the default dtype decides a Python float's type in promotion (an integer tensor times 0.5) and factory ops'
    return (func, torch.get_default_dtype(), *described)


def remembered_output(key: tuple[Any, ...]) -> Any:
    """A fresh output laid out as the one remembered under ``key``, or None."""
    layout = _MEMO.get(key)
    return None if layout is None else _built(layout)


def remember(key: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """Remember ``out``'s layout under ``key`` when its tensors are fresh (:func:`fresh_outputs`)."""
    layout = _layout(out)
    if layout is None or not fresh_outputs(out, args, kwargs):
        return
    if len(_MEMO) >= MEMO_LIMIT:
        _MEMO.clear()
    _MEMO[key] = layout


def fresh_outputs(out: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether every tensor of ``out`` has a storage of its own (shared with no operand and no other output), at
    offset 0 and exactly as many bytes as its shape and strides need."""
    outs = list(out) if isinstance(out, tuple | list) else [out]
    taken = {id(t.untyped_storage()) for t in tensors_in((*args, *kwargs.values()))}
    for t in outs:
        storage = t.untyped_storage()
        if id(storage) in taken or t.storage_offset() != 0 or storage.nbytes() != dense_bytes(t):
            return False
        taken.add(id(storage))
    return True


@contextlib.contextmanager
def memo_off() -> Iterator[None]:
    """Nothing is remembered or served in the block (every op runs torch's kernel: the memo's baseline)."""
    before = _STATE["on"]
    _STATE["on"] = False
    try:
        yield
    finally:
        _STATE["on"] = before


def _eligible(func: Any) -> bool:
    """Not a view, no operand written, no data-dependent output shape (cached per op)."""
    known = _ELIGIBLE.get(func)
    if known is None:
        schema = func._schema
        writes = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
        aliases = any(r.alias_info is not None for r in schema.returns)
        dependent = any(tag in func.tags for tag in _DATA_DEPENDENT)
        known = _ELIGIBLE[func] = not (func.is_view or writes or aliases or dependent or not schema.returns)
    return known


def _key(value: Any) -> Any:
    """A hashable description of an argument; :class:`_NotKeyableError` for what the module docstring leaves out."""
    if isinstance(value, _Tensor):
        if value.device.type != "meta" or value.layout != torch.strided or value.is_complex() or value.is_neg():
            raise _NotKeyableError
        return (tuple(value.shape), value.stride(), value.dtype)
    if isinstance(value, _PLAIN):
        if value != value:  # NaN: never equal to itself, so never found again
            raise _NotKeyableError
        return (type(value), value)
    if isinstance(value, tuple | list):
        return (type(value), tuple(_key(v) for v in value))
    raise _NotKeyableError


def _layout(out: Any) -> tuple[Any, ...] | None:
    """What :func:`_built` rebuilds ``out`` from, or None when it is not one tensor or a tuple or list of them."""
    if _plain_meta(out):
        return ("tensor", (tuple(out.shape), out.stride(), out.dtype))
    if isinstance(out, tuple | list) and out and all(_plain_meta(t) for t in out):
        return (type(out).__name__, tuple((tuple(t.shape), t.stride(), t.dtype) for t in out))
    return None


def _plain_meta(out: Any) -> bool:
    """A strided tensor on meta (what :func:`_empty` builds)."""
    return isinstance(out, _Tensor) and out.device.type == "meta" and out.layout == torch.strided


def _built(layout: tuple[Any, ...]) -> Any:
    kind, described = layout
    if kind == "tensor":
        return _empty(*described)
    outs = [_empty(*d) for d in described]
    return tuple(outs) if kind == "tuple" else outs


def _empty(shape: tuple[int, ...], stride: tuple[int, ...], dtype: torch.dtype) -> _Tensor:
    return torch.empty_strided(shape, stride, dtype=dtype, device=_META)
