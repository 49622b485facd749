"""Handlers for data movement: copies, concatenation (and the KV append), gathers, scatters, sorts, fills,
interpolation.  No FLOPs except where noted (scatter-add adds, sorts compare, interpolation multiplies-adds).

Byte rules (docs/conventions.md §2): a copy reads its source and writes its destination; a gather reads the rows it
selects (plus the index), not the whole table; a scatter writes the rows it updates; a fill writes its output;
a KV-cache append (``cat`` with a KV-cache operand) reads and writes the new tokens only - a static cache
writes them in place, so the eager ``cat``'s copy of the old cache is not charged.
"""

from __future__ import annotations

from math import prod

import torch

from llm_perf_opt.tracer.ops.formulas import SORT_RULE, interpolate_taps, sort_flops
from llm_perf_opt.tracer.ops.io import KV, OpCall, OpCounts, Touch, tensors_in, touched
from llm_perf_opt.tracer.ops.rule import Handler, OpTable, add, counted

__all__ = ["MOVEMENT_RULES"]

_Tensor = torch.Tensor


def _copy(op: OpCall) -> OpCounts:
    """Out-of-place copy-like op: read tensor operands, write outputs."""
    return OpCounts(reads=op.operands(), writes=op.outputs())


def _copy_(op: OpCall) -> OpCounts:
    """``dst.copy_(src)``: read src (broadcast dims once), write dst."""
    return OpCounts(reads=((op.first_of("src", "other"), -1),), writes=((op.first, -1),))


def _cat(op: OpCall) -> OpCounts:
    """Concatenate: read the parts, write the output.  A KV-cache append (a part is KV memory) reads and writes
    only the new tokens, and the output becomes the KV cache."""
    parts = [t for t in tensors_in((op["tensors"],)) if t.numel()]
    if not any(op.kind(t) == KV for t in parts):
        return OpCounts(reads=tuple((t, -1) for t in parts), writes=((op.out, -1),))
    new = [t for t in parts if op.kind(t) != KV]
    return OpCounts(reads=tuple((t, -1) for t in new), kv_append=sum(t.numel() * t.element_size() for t in new))


def _fill(op: OpCall) -> OpCounts:
    """Factory or fill: write the output (a fill value that is a tensor is read)."""
    return OpCounts(reads=op.operands(skip=1), writes=op.outputs())


def _rows(op: OpCall, table: torch.Tensor, index: torch.Tensor | None, *extra: Touch) -> OpCounts:
    """Gather rows of ``table``: read the selected rows (output size) and the index, write the output."""
    out = op.out
    reads = ((table, out.numel() * table.element_size()), *(((index, -1),) if index is not None else ()), *extra)
    return OpCounts(reads=reads, writes=((out, -1),))


def _embedding(op: OpCall) -> OpCounts:
    return _rows(op, op["weight"], op["indices"])


def _index_select(op: OpCall) -> OpCounts:
    return _rows(op, op["self"], op["index"])


def _index(op: OpCall) -> OpCounts:
    return _rows(op, op["self"], None, *op.operands(skip=1))


def _gather(op: OpCall) -> OpCounts:
    return _rows(op, op["self"], op["index"])


def _index_put(op: OpCall) -> OpCounts:
    """``self[indices] = values``: read indices and values, write the indexed elements (read them too if
    accumulating).  Indexed elements = broadcast index shape x the trailing dims when every index is a leading
    integer tensor; otherwise (boolean masks, gaps) the values' element count."""
    self_, idx, values = op["self"], list(op["indices"]), op["values"]
    if idx and all(isinstance(i, _Tensor) and i.dtype != torch.bool for i in idx):
        n = _broadcast_numel([tuple(i.shape) for i in idx]) * prod(self_.shape[len(idx) :])
    else:
        n = values.numel()
    nbytes = n * self_.element_size()
    reads = (*touched(idx), (values, -1))
    if op["accumulate"]:
        return OpCounts(vec=n, reads=(*reads, (self_, nbytes)), writes=((self_, nbytes),))
    return OpCounts(reads=reads, writes=((self_, nbytes),))


def _broadcast_numel(shapes: list[tuple[int, ...]]) -> int:
    """Element count of the broadcast of ``shapes`` (each dim: the largest size, sizes 1 stretch)."""
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    return prod(max(sizes) for sizes in zip(*padded, strict=True))


def _into(op: OpCall, self_: torch.Tensor, n: int, reads: tuple[Touch, ...], *, vec: int = 0) -> OpCounts:
    """``n`` elements of ``self_`` written in place, or, for an out-of-place variant, the whole output written
    and the untouched rest of ``self_`` read (it is copied too)."""
    elem = self_.element_size()
    target = op.result if op.out is not None else self_
    if target is not self_ and target.untyped_storage() is not self_.untyped_storage():
        return OpCounts(vec=vec, reads=(*reads, (self_, (self_.numel() - n) * elem)), writes=((target, -1),))
    return OpCounts(vec=vec, reads=reads, writes=((self_, n * elem),))


def _scatter(*, adds: bool) -> Handler:
    """Scatter ``source`` into ``self`` (in place or into a copy): read source/index, write that many elements."""

    def handler(op: OpCall) -> OpCounts:
        self_, index, src = op["self"], op["index"], op.first_of("src", "source", "value")
        reads: tuple[Touch, ...] = ()
        if isinstance(src, _Tensor):
            n = min(src.numel(), self_.numel())
            reads = ((src, n * src.element_size()),)
        else:
            n = index.numel() if isinstance(index, _Tensor) else self_.numel()
        if isinstance(index, _Tensor):
            reads = (*reads, (index, -1))
        if adds:
            reads = (*reads, (self_, n * self_.element_size()))
        return _into(op, self_, n, reads, vec=n if adds else 0)

    return handler


def _masked_scatter(op: OpCall) -> OpCounts:
    """``self.masked_scatter_(mask, source)``: the masked count is data-dependent; on meta it is taken as
    ``min(source, self)`` elements (the model always supplies exactly one source row per masked row)."""
    self_, mask, src = op["self"], op["mask"], op["source"]
    n = min(src.numel(), self_.numel())
    return _into(op, self_, n, ((mask, -1), (src, n * src.element_size())))


def _sort(op: OpCall) -> OpCounts:
    x = op["self"]
    n = x.size(op["dim"]) if x.dim() else 1
    return OpCounts(vec=sort_flops(numel=x.numel(), n=n), reads=((x, -1),), writes=op.outputs())


def _topk(op: OpCall) -> OpCounts:
    """A partial selection: one comparison per input element (k is small against the row)."""
    x = op["self"]
    return OpCounts(vec=x.numel(), reads=((x, -1),), writes=op.outputs())


def _interpolate(taps_1d: int, *, antialias: bool) -> Handler:
    def handler(op: OpCall) -> OpCounts:
        x, out = op.first, op.out
        in_sizes = tuple(x.size())[2:]
        out_sizes = tuple(out.size())[2:]
        taps = interpolate_taps(taps_1d=taps_1d, in_sizes=in_sizes, out_sizes=out_sizes, antialias=antialias)
        vec = 2 * taps * out.numel() if taps_1d > 1 else 0
        return OpCounts(vec=vec, reads=((x, -1),), writes=((out, -1),))

    return handler


def _repeat_like(op: OpCall) -> OpCounts:
    return OpCounts(reads=((op.first, -1),), writes=op.outputs())


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
    add(rules, ["index_copy"], counted("scatter", _SCATTER, dm, _scatter(adds=False)))
    add(
        rules,
        ["index_add"],
        counted("scatter", _SCATTER + "; one add per element", dm, _scatter(adds=True)),
    )
    add(rules, ["index_fill"], counted("scatter", "write the filled slices, read the index", dm, _index_fill))
    add(rules, ["scatter"], counted("scatter", _SCATTER, dm, _scatter(adds=False)))
    add(
        rules,
        ["scatter_add"],
        counted("scatter", _SCATTER + "; one add per element", dm, _scatter(adds=True)),
    )
    add(
        rules,
        ["scatter_reduce"],
        counted("scatter", _SCATTER + "; one op per element", dm, _scatter(adds=True)),
    )
    add(rules, ["masked_scatter"], counted("scatter", _SCATTER + " (masked count = source size)", dm, _masked_scatter))
    add(rules, ["sort"], counted("sort", SORT_RULE, "other", _sort))
    add(rules, ["argsort"], counted("sort", SORT_RULE, "other", _sort))
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


def _index_fill(op: OpCall) -> OpCounts:
    """Fill the slices ``index`` selects along ``dim``: read the index, write those slices (in place), or read
    ``self`` and write the whole output (out of place)."""
    self_, dim, index = op["self"], op["dim"], op["index"]
    row = self_.numel() // self_.size(dim) if self_.size(dim) else 0
    if op.result.untyped_storage() is self_.untyped_storage():
        return OpCounts(reads=((index, -1),), writes=((self_, index.numel() * row * self_.element_size()),))
    return OpCounts(reads=((index, -1), (self_, -1)), writes=((op.result, -1),))


def _gather_take(op: OpCall) -> OpCounts:
    return _rows(op, op["self"], op["index"])


MOVEMENT_RULES: OpTable = _movement_rules()
