"""Raw per-path counters of one or more traced passes, before grouping (keys use concrete module paths).

:attr:`RawTrace.table` holds one :class:`~llm_perf_opt.core.counts.Counters` per ``(stage, path, category, op)``;
its ``kernels`` counts every call of the op (counted or not), the other counters are the op formulas' sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from attrs import define, field

from llm_perf_opt.core.counts import Counters

__all__ = ["CounterTables", "OpKey", "PathKey", "RawTrace", "accumulate", "call_shape"]

OpKey = tuple[str, str, str, str]
"""(stage, path, category, op)."""
PathKey = tuple[str, str]
"""(stage, path)."""


class CounterTables(Protocol):
    """What :func:`accumulate` adds up: op rows and calls (summed), peaks and KV held (maxima)."""

    table: Any
    calls: Any
    peaks: Any
    kv_held: Any


def accumulate(into: CounterTables, other: CounterTables) -> None:
    """Add ``other``'s counters into ``into``: rows and calls are summed; peaks and KV held take the max (both
    describe a level, not an amount).  Shared by :class:`RawTrace` (module paths) and ``NodeData`` (grouped nodes)."""
    for key, row in other.table.items():
        mine = into.table.get(key)
        if mine is None:
            into.table[key] = row.copy()
        else:
            mine.add(row)
    for key, n in other.calls.items():
        into.calls[key] = into.calls.get(key, 0) + n
    for key, n in other.peaks.items():
        into.peaks[key] = max(into.peaks.get(key, 0), n)
    for key, n in other.kv_held.items():
        into.kv_held[key] = max(into.kv_held.get(key, 0), n)


@define
class RawTrace:
    """Counters keyed by concrete module path; several passes may be merged into one."""

    table: dict[OpKey, Counters] = field(factory=dict)
    calls: dict[PathKey, int] = field(factory=dict)
    peaks: dict[PathKey, int] = field(factory=dict)
    sigs: dict[PathKey, dict[str, None]] = field(factory=dict)
    kv_held: dict[PathKey, int] = field(factory=dict)
    chain: dict[PathKey, list[int]] = field(factory=dict)
    """(stage, ModuleList path) -> [member calls fed by the previous member's output, member calls that were not]."""
    op_buckets: dict[str, tuple[str, str, str]] = field(factory=dict)
    """op -> (bucket, rule name, reason)."""

    def merge(self, other: RawTrace) -> None:
        """Add ``other`` into this trace (sums; peaks and KV held take the max; signatures union in order)."""
        accumulate(self, other)
        _add_order(self, other)
        self.op_buckets.update(other.op_buckets)


def _add_order(into: RawTrace, other: RawTrace) -> None:
    """Add ``other``'s signatures (a union, in order of first sight) and list chains (sums) into ``into``."""
    for pk, sig in other.sigs.items():
        into.sigs.setdefault(pk, {}).update(sig)
    for pk, pair in other.chain.items():
        mine = into.chain.setdefault(pk, [0, 0])
        mine[0] += pair[0]
        mine[1] += pair[1]


def call_shape(raws: Iterable[RawTrace]) -> RawTrace:
    """The calls, signatures and chains of ``raws`` merged as :meth:`RawTrace.merge` merges them, without their
    counters, peaks or KV: what grouping the passes' ModuleList members reads (:func:`~llm_perf_opt.tracer.grouping.
    group_stage`).  Merging the whole passes copied every counter row of them for nothing (0.02-0.03 s a trace)."""
    out = RawTrace()
    for raw in raws:
        for key, n in raw.calls.items():
            out.calls[key] = out.calls.get(key, 0) + n
        _add_order(out, raw)
    return out
