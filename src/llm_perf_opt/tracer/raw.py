"""Raw per-path counters of one or more traced passes, before grouping (keys use concrete module paths).

Row layout of :attr:`RawTrace.table` (one list of ints per ``(stage, path, category, op)``): see ``ROW_FIELDS``.
"""

from __future__ import annotations

from typing import Any, Protocol

from attrs import define, field

from llm_perf_opt.core import Cost

__all__ = ["KEY_COUNT", "ROW_FIELDS", "Counters", "OpKey", "PathKey", "RawTrace", "accumulate", "row_cost"]

ROW_FIELDS: tuple[str, ...] = (
    "count",
    "matmul_flops",
    "matmul_flops_executed",
    "vector_flops",
    "bytes_read",
    "bytes_written",
    "weight_bytes_read",
    "kv_bytes_read",
    "kv_bytes_written",
)
KEY_COUNT = 0

OpKey = tuple[str, str, str, str]
"""(stage, path, category, op)."""
PathKey = tuple[str, str]
"""(stage, path)."""


def row_cost(row: list[int], *, counted: bool) -> Cost:
    """The Cost of a table row; ``kernels`` is the op count for counted ops and 0 otherwise."""
    return Cost(
        matmul_flops=row[1],
        matmul_flops_executed=row[2],
        vector_flops=row[3],
        bytes_read=row[4],
        bytes_written=row[5],
        weight_bytes_read=row[6],
        kv_bytes_read=row[7],
        kv_bytes_written=row[8],
        kernels=row[0] if counted else 0,
    )


class Counters(Protocol):
    """What :func:`accumulate` adds up: op rows and calls (summed), peaks and KV held (maxima)."""

    table: Any
    calls: Any
    peaks: Any
    kv_held: Any


def accumulate(into: Counters, other: Counters) -> None:
    """Add ``other``'s counters into ``into``: rows and calls are summed; peaks and KV held take the max (both
    describe a level, not an amount).  Shared by :class:`RawTrace` (module paths) and ``NodeData`` (grouped nodes)."""
    for key, row in other.table.items():
        mine = into.table.get(key)
        if mine is None:
            into.table[key] = list(row)
        else:
            for i, v in enumerate(row):
                mine[i] += v
    for key, n in other.calls.items():
        into.calls[key] = into.calls.get(key, 0) + n
    for key, n in other.peaks.items():
        into.peaks[key] = max(into.peaks.get(key, 0), n)
    for key, n in other.kv_held.items():
        into.kv_held[key] = max(into.kv_held.get(key, 0), n)


@define
class RawTrace:
    """Counters keyed by concrete module path; several passes may be merged into one."""

    table: dict[OpKey, list[int]] = field(factory=dict)
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
        for pk, sig in other.sigs.items():
            self.sigs.setdefault(pk, {}).update(sig)
        for pk, pair in other.chain.items():
            mine_pair = self.chain.setdefault(pk, [0, 0])
            mine_pair[0] += pair[0]
            mine_pair[1] += pair[1]
        self.op_buckets.update(other.op_buckets)
