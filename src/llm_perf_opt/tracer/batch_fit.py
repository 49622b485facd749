"""Batch without tracing every row: the vision and projector stages of a prefill, extrapolated exactly in the batch.

The vision tower encodes the pages of a batch one row after another, so a full trace costs one vision pass per row.
These stages are traced at three small batches ``b1 < b2 < b3`` (consecutive: 1, 2, 3) and extrapolated to batch
``B``; the language stages are traced at ``B`` itself (their cost does not grow with rows, and MoE expert coverage,
which is not affine in the batch, is then exactly what the routing model gives at ``B``).

For every counter of every ``(stage, path, category, op)`` row of the kept stages, every call count and every
ModuleList chain count (all *additive*), the three values must satisfy
``(v2 - v1) * (b3 - b1) == (v3 - v1) * (b2 - b1)``; then ``v(B) = v1 + (v2 - v1) * (B - b1) / (b2 - b1)``, which
must be a non-negative integer.

*Levels* (peaks, KV held) are extrapolated through the two largest points only, ``v(B) = v2 + (v3 - v2) * (B - b2)
/ (b3 - b2)`` for ``B >= b2`` (``v1`` at ``B = b1``): the first row may see a different live set than the later
ones (in DeepSeek-OCR v1 the previous row's features are still alive while the next row is encoded), so a peak is
affine only from the second row on.  Two points cannot refute a level; tests compare against full traces.

Trace signatures of the kept stages must be equal at the three points (the same ops and calls in the same order).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from fractions import Fraction

from llm_perf_opt.core.counts import COST_FIELDS, Counters
from llm_perf_opt.tracer.decode_fit import field_triple, key_triple, ordered_keys
from llm_perf_opt.tracer.raw import RawTrace

__all__ = ["BATCH_POINTS", "EXTRAPOLATE_FROM", "BatchFitError", "affine_at", "extrapolate_stages", "split_stages"]

BATCH_POINTS: tuple[int, int, int] = (1, 2, 3)
"""Batches the extrapolated stages are traced at."""

EXTRAPOLATE_FROM = 8
"""``batch="auto"`` extrapolates the vision stages from batch 1, 2, 3 at this many rows or more (below it, tracing
every row costs about as much as the three points)."""


class BatchFitError(Exception):
    """A counter is not affine in the batch (or the points disagree on structure); ``where`` names it."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def split_stages(raw: RawTrace, stages: Collection[str]) -> tuple[RawTrace, RawTrace]:
    """``raw`` as two traces: the keys of ``stages`` and the rest (op buckets go with the rows that use them)."""
    inside, outside = RawTrace(), RawTrace()
    for name in ("table", "calls", "peaks", "sigs", "kv_held", "chain"):
        source: dict[tuple[str, ...], object] = getattr(raw, name)
        for key, value in source.items():
            target: dict[tuple[str, ...], object] = getattr(inside if key[0] in stages else outside, name)
            target[key] = value
    for part in (inside, outside):
        ops = {key[3] for key in part.table}
        part.op_buckets = {op: bucket for op, bucket in raw.op_buckets.items() if op in ops}
    return inside, outside


def affine_at(name: str, values: Sequence[int], points: Sequence[int], batch: int) -> int:
    """The value at ``batch`` of the line through three ``(point, value)`` pairs, a non-negative integer; else
    :class:`BatchFitError` (off the line, or not such an integer there) naming ``name``."""
    (v1, v2, v3), (b1, b2, b3) = values, points
    if (v2 - v1) * (b3 - b1) != (v3 - v1) * (b2 - b1):
        raise BatchFitError(f"{name}: {v1}, {v2}, {v3} at batch {b1}, {b2}, {b3}")
    return _checked(name, v1, (v2 - v1) * (batch - b1), b2 - b1)


def _level(name: str, values: tuple[int, int, int], points: tuple[int, int, int], batch: int) -> int:
    (v1, v2, v3), (b1, b2, b3) = values, points
    if batch <= b1:
        return v1
    return _checked(name, v2, (v3 - v2) * (batch - b2), b3 - b2)


def _checked(name: str, base: int, rise: int, run: int) -> int:
    """``base + rise / run``, which must be a non-negative integer (integer arithmetic: this runs per counter)."""
    step, rest = divmod(rise, run)
    value = base + step
    if rest or value < 0:
        raise BatchFitError(f"{name} extrapolates to {base + Fraction(rise, run)}, not a non-negative integer")
    return value


def extrapolate_stages(points: Mapping[int, RawTrace], batch: int) -> RawTrace:
    """The three traced points (each already restricted to the extrapolated stages) at ``batch``.

    Raises :class:`BatchFitError` when a counter is not affine or the points' signatures differ.
    """
    idx = tuple(sorted(points))
    if len(idx) != 3:
        raise BatchFitError(f"need three batch points, got {idx}")
    b = (idx[0], idx[1], idx[2])
    raws = tuple(points[i] for i in b)
    out = RawTrace()
    zero = Counters()
    for key in ordered_keys(r.table for r in raws):
        rows = [r.table.get(key, zero) for r in raws]
        out.table[key] = Counters(
            **{name: affine_at(f"{key} {name}", field_triple(rows, name), b, batch) for name in COST_FIELDS}
        )
    for attr, fit in (("calls", affine_at), ("peaks", _level), ("kv_held", _level)):
        maps = tuple(getattr(r, attr) for r in raws)
        target: dict[Hashable, int] = getattr(out, attr)
        for nkey in ordered_keys(maps):
            target[nkey] = fit(f"{attr} of {nkey}", key_triple(maps, nkey), b, batch)
    pkey: tuple[str, str]
    for pkey in ordered_keys(r.chain for r in raws):
        pairs = [r.chain.get(pkey, [0, 0]) for r in raws]
        out.chain[pkey] = [
            affine_at(f"chain of {pkey}", (pairs[0][c], pairs[1][c], pairs[2][c]), b, batch) for c in (0, 1)
        ]
    for pkey in ordered_keys(r.sigs for r in raws):
        sigs = [list(r.sigs.get(pkey, {})) for r in raws]
        if sigs[0] != sigs[1] or sigs[1] != sigs[2]:
            raise BatchFitError(f"trace signature of {pkey} differs between batch {b[0]}, {b[1]}, {b[2]}")
        out.sigs[pkey] = dict.fromkeys(sigs[0])
    for r in raws:
        out.op_buckets.update(r.op_buckets)
    return out
