"""Handlers for data movement: copies, concatenation (and the KV append), gathers, scatters, sorts, fills,
interpolation.  No FLOPs except where noted (scatter-add adds, sorts compare, interpolation multiplies-adds).

Byte rules (docs/conventions.md §2): a copy reads its source and writes its destination; a gather reads the rows it
selects (plus the index), not the whole table; a scatter writes the rows it updates; a fill writes its output;
a KV-cache append (``cat`` with a KV-cache operand) reads and writes the new tokens only - a static cache
writes them in place, so the eager ``cat``'s copy of the old cache is not charged.
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch

from llm_perf_opt.tracer.ops.formulas import interpolate_taps, sort_flops
from llm_perf_opt.tracer.ops.io import KV, OpIO, read_bytes, tensors_in
from llm_perf_opt.tracer.ops.rule import Handler, OpTable, add, counted

__all__ = ["MOVEMENT_RULES"]

_Tensor = torch.Tensor


def _copy(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """Out-of-place copy-like op: read tensor operands, write outputs."""
    io.read_all(args)
    io.write_all(out)


def _copy_(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """``dst.copy_(src)``: read src (broadcast dims once), write dst."""
    dst, src = args[0], args[1]
    io.read(src)
    io.write(dst)


def _cat(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    parts = [t for t in tensors_in(args[:1]) if t.numel()]
    kv_parts = [t for t in parts if io.kind(t) == KV]
    if not kv_parts:
        for t in parts:
            io.read(t)
        io.write(out)
        return
    new_bytes = 0
    for t in parts:
        if io.kind(t) != KV:
            io.read(t)
            new_bytes += t.numel() * t.element_size()
    io.written += new_bytes
    io.kv_written += new_bytes
    io.out_kv = True


def _fill(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """Factory or fill: write the output (a fill value that is a tensor is read)."""
    for t in tensors_in(args[1:]):
        io.read(t)
    io.write_all(out)


def _gather_rows(io: OpIO, table: torch.Tensor, index: torch.Tensor | None, out: torch.Tensor) -> None:
    io.read(table, out.numel() * table.element_size())
    if index is not None:
        io.read(index)
    io.write(out)


def _embedding(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    _gather_rows(io, args[0], args[1], out)


def _index_select(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    _gather_rows(io, args[0], args[2], out)


def _index(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    for t in tensors_in(args[1:]):
        io.read(t)
    _gather_rows(io, args[0], None, out)


def _gather(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    _gather_rows(io, args[0], args[2], out)


def _index_put(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """``self[indices] = values``: read indices and values, write the indexed elements (read them too if
    accumulating).  Indexed elements = broadcast index shape x the trailing dims when every index is a leading
    integer tensor; otherwise (boolean masks, gaps) the values' element count."""
    self_, indices, values = args[0], args[1], args[2]
    accumulate = bool(args[3]) if len(args) > 3 else bool(kwargs.get("accumulate", False))
    idx = list(indices)
    if idx and all(isinstance(i, _Tensor) and i.dtype != torch.bool for i in idx):
        n = _broadcast_numel([tuple(i.shape) for i in idx]) * prod(self_.shape[len(idx) :])
    else:
        n = values.numel()
    for t in tensors_in(idx):
        io.read(t)
    io.read(values)
    elem = self_.element_size()
    if accumulate:
        io.read(self_, n * elem)
        io.vec = n
    io.write(self_, n * elem)


def _broadcast_numel(shapes: list[tuple[int, ...]]) -> int:
    """Element count of the broadcast of ``shapes`` (each dim: the largest size, sizes 1 stretch)."""
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    return prod(max(sizes) for sizes in zip(*padded, strict=True))


def _scatter_like(*, source_at: int, index_at: int | None, adds: bool) -> Handler:
    """Scatter ``source`` into ``self`` (in place or into a copy): read source/index, write that many elements."""

    def handler(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        self_ = args[0]
        src = args[source_at] if len(args) > source_at else None
        index = args[index_at] if index_at is not None else None
        n = index.numel() if isinstance(index, _Tensor) and not isinstance(src, _Tensor) else None
        if isinstance(src, _Tensor):
            n = min(src.numel(), self_.numel())
            io.read(src, n * src.element_size())
        if isinstance(index, _Tensor):
            io.read(index)
        n = self_.numel() if n is None else n
        elem = self_.element_size()
        if adds:
            io.read(self_, n * elem)
            io.vec = n
        target = _first(out) if out is not None else self_
        if target is not self_ and target.untyped_storage() is not self_.untyped_storage():
            # out-of-place variant: the untouched rest of self is copied too
            io.read(self_, (self_.numel() - n) * elem)
            io.write(target)
        else:
            io.write(self_, n * elem)

    return handler


def _masked_scatter(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """``self.masked_scatter_(mask, source)``: the masked count is data-dependent; on meta it is taken as
    ``min(source, self)`` elements (the model always supplies exactly one source row per masked row)."""
    self_, mask, src = args[0], args[1], args[2]
    n = min(src.numel(), self_.numel())
    io.read(mask)
    io.read(src, n * src.element_size())
    target = _first(out)
    if target.untyped_storage() is self_.untyped_storage():
        io.write(self_, n * self_.element_size())
    else:
        io.read(self_, (self_.numel() - n) * self_.element_size())
        io.write(target)


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple | list) else out  # type: ignore[no-any-return]


def _sort(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    x = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else -1)
    n = x.size(dim) if x.dim() else 1
    io.vec = sort_flops(numel=x.numel(), n=n)
    io.read(x)
    io.write_all(out)


def _topk(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """A partial selection: one comparison per input element (k is small against the row)."""
    x = args[0]
    io.vec = x.numel()
    io.read(x)
    io.write_all(out)


def _interpolate(taps_1d: int, *, antialias: bool) -> Handler:
    def handler(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        x = args[0]
        in_sizes = tuple(x.size())[2:]
        out_sizes = tuple(out.size())[2:]
        taps = interpolate_taps(taps_1d=taps_1d, in_sizes=in_sizes, out_sizes=out_sizes, antialias=antialias)
        io.vec = 2 * taps * out.numel() if taps_1d > 1 else 0
        io.read(x)
        io.write(out)

    return handler


def _repeat_like(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    io.read(args[0], read_bytes(args[0]))
    io.write_all(out)


_COPY = "read the source, write the destination; no FLOPs"
_GATHER = "read the selected rows (output size) and the index, write the output"
_SCATTER = "read source and index, write the updated elements"
_FILL = "write the output; no FLOPs"


def _movement_rules() -> OpTable:
    dm = "data_movement"
    rules: OpTable = {}
    for name in [
        "clone",
        "_to_copy",
        "contiguous",
        "constant_pad_nd",
        "reflection_pad1d",
        "reflection_pad2d",
        "replication_pad1d",
        "replication_pad2d",
        "flip",
        "roll",
        "tril",
        "triu",
        "narrow_copy",
        "expand_copy",
        "permute_copy",
        "transpose_copy",
        "view_copy",
        "unsqueeze_copy",
        "squeeze_copy",
        "slice_copy",
        "select_copy",
        "t_copy",
        "split_with_sizes_copy",
        "split_copy",
        "unbind_copy",
        "alias_copy",
        "as_strided_copy",
        "_reshape_copy",
        "col2im",
        "im2col",
        "pixel_shuffle",
        "pixel_unshuffle",
        "channel_shuffle",
        "stack",
        "hstack",
        "vstack",
    ]:
        add(rules, [name], counted("copy", _COPY, dm, _copy))
    add(rules, ["copy_"], counted("copy", "read src (stride-0 dims once), write dst", dm, _copy_))
    add(rules, ["copy"], counted("copy", _COPY, dm, _copy))
    add(rules, ["cat"], counted("cat", _COPY + "; a KV-cache append reads/writes the new tokens only", dm, _cat))
    add(rules, ["repeat"], counted("copy", "read the source once, write the repeated output", dm, _repeat_like))
    add(rules, ["repeat_interleave"], counted("copy", "read the source once, write the output", dm, _repeat_like))
    for name in [
        "zeros",
        "ones",
        "full",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "scalar_tensor",
        "zeros_like",
        "ones_like",
        "full_like",
    ]:
        add(rules, [name], counted("fill", _FILL, dm, _fill))
    for name in [
        "new_zeros",
        "new_ones",
        "new_full",
        "fill",
        "zero",
        "rand",
        "randn",
        "randint",
        "normal",
        "uniform",
        "bernoulli",
    ]:
        add(rules, [name], counted("fill", _FILL, dm, _fill))
    add(rules, ["embedding"], counted("gather", _GATHER, "embedding", _embedding))
    add(rules, ["index_select"], counted("gather", _GATHER, dm, _index_select))
    add(rules, ["index"], counted("gather", _GATHER, dm, _index))
    add(rules, ["gather"], counted("gather", _GATHER, dm, _gather))
    add(rules, ["take"], counted("gather", _GATHER, dm, _gather_take))
    add(rules, ["index_put"], counted("scatter", _SCATTER + " (read-modify-write if accumulating)", dm, _index_put))
    add(rules, ["index_copy"], counted("scatter", _SCATTER, dm, _scatter_like(source_at=3, index_at=2, adds=False)))
    add(
        rules,
        ["index_add"],
        counted("scatter", _SCATTER + "; one add per element", dm, _scatter_like(source_at=3, index_at=2, adds=True)),
    )
    add(rules, ["index_fill"], counted("scatter", "write the filled slices, read the index", dm, _index_fill))
    add(rules, ["scatter"], counted("scatter", _SCATTER, dm, _scatter_like(source_at=3, index_at=2, adds=False)))
    add(
        rules,
        ["scatter_add"],
        counted("scatter", _SCATTER + "; one add per element", dm, _scatter_like(source_at=3, index_at=2, adds=True)),
    )
    add(
        rules,
        ["scatter_reduce"],
        counted("scatter", _SCATTER + "; one op per element", dm, _scatter_like(source_at=3, index_at=2, adds=True)),
    )
    add(rules, ["masked_scatter"], counted("scatter", _SCATTER + " (masked count = source size)", dm, _masked_scatter))
    add(rules, ["sort"], counted("sort", "numel*ceil(log2 n) comparisons", "other", _sort))
    add(rules, ["argsort"], counted("sort", "numel*ceil(log2 n) comparisons", "other", _sort))
    add(rules, ["topk"], counted("sort", "one comparison per input element", "other", _topk))
    interp = "2 FLOPs per tap per output element (taps: linear 2, cubic 4 per dim; antialias widens)"
    for name, taps, aa in (
        ("upsample_nearest1d", 1, False),
        ("upsample_nearest2d", 1, False),
        ("_upsample_nearest_exact2d", 1, False),
        ("upsample_linear1d", 2, False),
        ("upsample_bilinear2d", 2, False),
        ("_upsample_bilinear2d_aa", 2, True),
        ("upsample_bicubic2d", 4, False),
        ("_upsample_bicubic2d_aa", 4, True),
        ("upsample_trilinear3d", 2, False),
    ):
        add(rules, [name], counted("interpolate", interp, dm, _interpolate(taps, antialias=aa)))
    return rules


def _index_fill(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    self_, dim, index = args[0], args[1], args[2]
    row = self_.numel() // self_.size(dim) if self_.size(dim) else 0
    io.read(index)
    target = _first(out)
    if target.untyped_storage() is self_.untyped_storage():
        io.write(self_, index.numel() * row * self_.element_size())
    else:
        io.read(self_)
        io.write(target)


def _gather_take(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    _gather_rows(io, args[0], args[1], out)


MOVEMENT_RULES: OpTable = _movement_rules()
