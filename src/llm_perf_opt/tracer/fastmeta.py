"""Fast output construction for hot aten ops on the meta device.

torch registers Python meta kernels (``torch/_meta_registrations.py``, built on ``torch._refs``) over the C++ ones
for most elementwise ops, reductions, norms and addmm; each call costs hundreds of microseconds, which dominates
a trace.  For the common, unambiguous cases this module builds the output directly: ``torch.empty`` with the
broadcast shape, the promoted dtype and contiguous strides.  A case is taken only when every tensor operand is
densely row-major (then torch's output is too) and its dtype rule is simple (floating inputs for unary ops
and reductions); anything else returns ``None`` and the real meta kernel runs.

``verify=True`` in :class:`FastMeta` runs both and raises on any difference in shape, dtype or strides; the test
suite traces the built-in model that way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from llm_perf_opt.errors import TraceError

__all__ = ["FAST_META", "fast_output", "verify_output"]

_META = torch.device("meta")
_Tensor = torch.Tensor
_aten = torch.ops.aten

Builder = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def _empty(shape: Sequence[int], dtype: torch.dtype) -> _Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _dense(t: _Tensor) -> bool:
    """Row-major strides exactly as ``torch.empty`` makes them (size-1 dims included: torch propagates odd
    strides of size-1 dims into elementwise outputs, so such operands take the slow path)."""
    expected = 1
    for size, stride in zip(reversed(t.shape), reversed(t.stride()), strict=True):
        if stride != expected:
            return False
        expected *= size
    return True


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    off = len(a) - len(b)
    for i, size in enumerate(b):
        mine = out[off + i]
        if mine == size or size == 1:
            continue
        if mine == 1:
            out[off + i] = size
        else:
            return None
    return tuple(out)


def _operands(values: Sequence[Any]) -> tuple[tuple[int, ...], list[_Tensor]] | None:
    """Broadcast shape of the tensor operands (all contiguous), or None."""
    shape: tuple[int, ...] | None = ()
    tensors: list[_Tensor] = []
    for v in values:
        if isinstance(v, _Tensor):
            if not _dense(v) or v.device.type != "meta":
                return None
            tensors.append(v)
            shape = _broadcast(shape, v.shape) if shape is not None else None
        elif not isinstance(v, int | float | bool) or v is None:
            return None
    if shape is None or not tensors:
        return None
    return shape, tensors


def _binary(kind: str) -> Builder:
    """``kind``: 'promote' (result_type), 'true_div', 'bool' (comparisons / logical)."""

    def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("rounding_mode") is not None and kind == "true_div":
            return None
        found = _operands(args[:2])
        if found is None:
            return None
        shape, _ = found
        if kind == "bool":
            return _empty(shape, torch.bool)
        dtype = torch.result_type(args[0], args[1])
        if kind == "true_div" and not (dtype.is_floating_point or dtype.is_complex):
            dtype = torch.get_default_dtype()
        return _empty(shape, dtype)

    return build


def _where(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    found = _operands(args[:3])
    if found is None or not isinstance(args[1], _Tensor) or not isinstance(args[2], _Tensor):
        return None
    return _empty(found[0], torch.result_type(args[1], args[2]))


def _masked_fill(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    found = _operands(args[:2])
    if found is None or found[0] != tuple(args[0].shape):
        return None
    return _empty(found[0], args[0].dtype)


def _inplace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """In-place elementwise: the output is ``self`` (shapes must broadcast into it)."""
    found = _operands(args[:2])
    if found is None or found[0] != tuple(args[0].shape):
        return None
    return args[0]


def _unary(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    x = args[0]
    if not isinstance(x, _Tensor) or not x.dtype.is_floating_point or not _dense(x):
        return None
    return _empty(x.shape, x.dtype)


def _reduce_shape(x: _Tensor, dims: Any, keepdim: bool) -> tuple[int, ...] | None:
    if not isinstance(dims, list | tuple) or not dims:
        return None
    nd = x.dim()
    norm = {d % nd for d in dims} if nd else set()
    shape = (
        [1 if i in norm else s for i, s in enumerate(x.shape)]
        if keepdim
        else [s for i, s in enumerate(x.shape) if i not in norm]
    )
    return tuple(shape)


def _reduction(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    x = args[0]
    if not isinstance(x, _Tensor) or not x.dtype.is_floating_point or not _dense(x):
        return None
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = bool(args[2]) if len(args) > 2 else bool(kwargs.get("keepdim", False))
    dtype = kwargs.get("dtype", args[3] if len(args) > 3 else None) or x.dtype
    shape = _reduce_shape(x, dims, keepdim)
    return None if shape is None else _empty(shape, dtype)


def _softmax(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    x = args[0]
    if not _dense(x) or not x.dtype.is_floating_point:
        return None
    half_to_float = bool(args[2]) if len(args) > 2 else False
    return _empty(x.shape, torch.float32 if half_to_float else x.dtype)


def _safe_softmax(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    x = args[0]
    if not _dense(x) or not x.dtype.is_floating_point:
        return None
    dtype = kwargs.get("dtype", args[2] if len(args) > 2 else None) or x.dtype
    return _empty(x.shape, dtype)


def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Outputs are dense row-major whatever the input's layout (torch's meta kernel allocates them fresh)."""
    x, normalized = args[0], args[1]
    if x.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        return None
    axis = x.dim() - len(normalized)
    stat_shape = (*x.shape[:axis], *([1] * len(normalized)))
    return _empty(x.shape, x.dtype), _empty(stat_shape, torch.float32), _empty(stat_shape, torch.float32)


def _upsample_1d(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``[N, C, L] -> [N, C, output_size]``, a fresh dense tensor."""
    x, size = args[0], args[1]
    if x.dim() != 3 or not isinstance(size, list | tuple) or len(size) != 1:
        return None
    return _empty((x.size(0), x.size(1), int(size[0])), x.dtype)


def _mm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    a, b = args[0], args[1]
    if a.dim() != 2 or b.dim() != 2 or a.dtype != b.dtype or a.size(1) != b.size(0):
        return None
    return _empty((a.size(0), b.size(1)), a.dtype)


def _addmm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bias = args[0]
    if not isinstance(bias, _Tensor) or bias.dtype != args[1].dtype:
        return None
    return _mm(args[1:], kwargs)


def _bmm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    a, b = args[0], args[1]
    if a.dim() != 3 or b.dim() != 3 or a.dtype != b.dtype or a.size(0) != b.size(0) or a.size(2) != b.size(1):
        return None
    return _empty((a.size(0), a.size(1), b.size(2)), a.dtype)


def _cat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Same-dtype, same-rank operands.  Below rank 4 torch's output is contiguous whatever the operands' strides
    (its memory-format suggestion is channels-last only for 4-d and 5-d tensors), so views, expands and transposes
    take this path too; rank 4 and up needs row-major operands."""
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors:
        return None
    first = tensors[0]
    nd = first.dim()
    if nd == 0:
        return None
    d = dim % nd
    total = 0
    for t in tensors:
        if t.dim() != nd or t.dtype != first.dtype or (nd > 3 and not _dense(t)):
            return None
        for i in range(nd):
            if i != d and t.size(i) != first.size(i):
                return None
        total += t.size(d)
    shape = list(first.shape)
    shape[d] = total
    return _empty(shape, first.dtype)


def _arange(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in args) or len(args) > 3:
        return None
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) > 2 else 1)
    if step == 0:
        return None
    n = max(0, -(-(end - start) // step)) if step > 0 else max(0, -(-(start - end) // -step))
    return _empty((n,), kwargs.get("dtype") or torch.int64)


def _plain_factory(kwargs: dict[str, Any]) -> bool:
    """A factory op's keywords ask for a plain strided tensor (no other layout, no pinned memory)."""
    return kwargs.get("layout") in (None, torch.strided) and not kwargs.get("pin_memory")


def _full(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``torch.full(size, value)``: dense; the dtype given, else the value's (bool, int64, the default float)."""
    size, value = args[0], args[1]
    if not isinstance(size, list | tuple) or not _plain_factory(kwargs):
        return None
    dtype = kwargs.get("dtype")
    if dtype is None:
        if isinstance(value, bool):
            dtype = torch.bool
        elif isinstance(value, int):
            dtype = torch.int64
        elif isinstance(value, float):
            dtype = torch.get_default_dtype()
        else:
            return None
    return _empty(tuple(size), dtype)


def _embedding(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``weight[indices]``: ``[*indices.shape, D]`` in the weight's dtype, fresh and dense."""
    weight, indices = args[0], args[1]
    if weight.dim() != 2 or indices.dtype not in (torch.int64, torch.int32):
        return None
    return _empty((*indices.shape, weight.size(1)), weight.dtype)


def _index_put_(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """In place: the output is ``self``."""
    return args[0]


def _new_zeros(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``self.new_zeros(size)``: dense, ``self``'s dtype unless one is given (a layout or pinning: slow path)."""
    size = args[1]
    if not isinstance(size, list | tuple) or not _plain_factory(kwargs):
        return None
    return _empty(tuple(size), kwargs.get("dtype") or args[0].dtype)


def _empty_like(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Of a densely row-major tensor, with the format preserved or contiguous: a dense tensor like it."""
    x = args[0]
    if not _dense(x) or kwargs.get("memory_format") not in (None, torch.preserve_format, torch.contiguous_format):
        return None
    return _empty(x.shape, kwargs.get("dtype") or x.dtype) if _plain_factory(kwargs) else None


def _sort(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Values like ``self`` and int64 indices, both dense (of a dense ``self``)."""
    x = args[0]
    if not _dense(x):
        return None
    return _empty(x.shape, x.dtype), _empty(x.shape, torch.int64)


def _unsafe_view(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A view of ``self`` with the new size (torch's meta decomposes it to ``view``); None where no view fits."""
    try:
        return args[0].view(args[1])
    except RuntimeError:
        return None


def _convolution(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Non-transposed convolution: ``[N, C_out, *spatial]`` with ``(in + 2p - d (k - 1) - 1) // s + 1`` per spatial
    dim, a fresh dense tensor whatever the operands' layout (torch's meta kernel, ``meta_conv``, leaves the memory
    format contiguous: on meta it cannot tell which backend would run)."""
    x, weight, _, stride, padding, dilation, transposed = args[:7]
    spatial = x.dim() - 2
    if transposed or spatial < 1 or weight.dim() != x.dim():
        return None
    if not all(len(v) in (1, spatial) for v in (stride, padding, dilation)):
        return None

    def at(values: Sequence[int], i: int) -> int:
        return int(values[i if len(values) == spatial else 0])

    dims = []
    for i in range(spatial):
        k = weight.size(2 + i)
        size = (x.size(2 + i) + 2 * at(padding, i) - at(dilation, i) * (k - 1) - 1) // at(stride, i) + 1
        if size <= 0:
            return None
        dims.append(size)
    return _empty((x.size(0), weight.size(0), *dims), x.dtype)


def _table() -> dict[Any, Builder]:
    table: dict[Any, Builder] = {}
    promote = _binary("promote")
    for name in ("add", "sub", "mul", "maximum", "minimum", "floor_divide", "remainder", "rsub", "pow"):
        for overload in ("Tensor", "Scalar", "Tensor_Scalar", "Tensor_Tensor", "default"):
            op = getattr(getattr(_aten, name), overload, None)
            if op is not None:
                table[op] = promote
        inplace = getattr(_aten, name + "_", None)
        for overload in ("Tensor", "Scalar"):
            op = getattr(inplace, overload, None) if inplace is not None else None
            if op is not None:
                table[op] = _inplace
    table[_aten.div.Tensor] = _binary("true_div")
    table[_aten.div.Scalar] = _binary("true_div")
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        table[getattr(_aten, name).Tensor] = _binary("bool")
        table[getattr(_aten, name).Scalar] = _binary("bool")
    table[_aten.where.self] = _where
    table[_aten.masked_fill.Scalar] = _masked_fill
    for name in [
        "neg",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "silu",
        "gelu",
        "relu",
        "erf",
        "reciprocal",
        "abs",
    ]:
        table[getattr(_aten, name).default] = _unary
    table.update(  # one builder per op overload
        {
            _aten.sum.dim_IntList: _reduction,
            _aten.mean.dim: _reduction,
            _aten._softmax.default: _softmax,
            _aten._safe_softmax.default: _safe_softmax,
            _aten.native_layer_norm.default: _layer_norm,
            _aten.upsample_linear1d.default: _upsample_1d,
            _aten.mm.default: _mm,
            _aten.addmm.default: _addmm,
            _aten.bmm.default: _bmm,
            _aten.cat.default: _cat,
            _aten.arange.default: _arange,
            _aten.arange.start: _arange,
            _aten.arange.start_step: _arange,
            _aten.full.default: _full,
            _aten.embedding.default: _embedding,
            _aten.index_put_.default: _index_put_,
            _aten.new_zeros.default: _new_zeros,
            _aten.empty_like.default: _empty_like,
            _aten.sort.default: _sort,
            _aten._unsafe_view.default: _unsafe_view,
            _aten.convolution.default: _convolution,
        }
    )
    return table


FAST_META: dict[Any, Builder] = _table()


def fast_output(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The op's output built directly, or None when the fast path does not apply."""
    build = FAST_META.get(func)
    if build is None:
        return None
    if kwargs and (kwargs.get("out") is not None or (kwargs.get("device") not in (None, _META, "meta"))):
        return None
    return build(args, kwargs)


def _describe(out: Any) -> Any:
    if isinstance(out, _Tensor):
        return (tuple(out.shape), out.dtype, out.stride())
    if isinstance(out, tuple | list):
        return tuple(_describe(o) for o in out)
    return out


def verify_output(func: Any, fast: Any, real: Any) -> None:
    """Raise TraceError when the fast output differs from the real meta kernel's in shape, dtype or strides."""
    if _describe(fast) != _describe(real):
        raise TraceError(f"fast meta output of {func} differs: {_describe(fast)} vs {_describe(real)}")
