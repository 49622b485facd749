"""Counters keyed by node *pattern* (grouped paths) instead of concrete module paths.

``NodeData`` is what the decode fit checks and integrates and what the tree builder rolls up.  A pattern is a
tuple of path components in which grouped indices are replaced by their index set (``("model", "layers",
"{1..11}")``); ``()`` is the traced root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from attrs import define, field

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.raw import RawTrace, accumulate

__all__ = ["NodeData", "NodeKey", "Pattern", "PatternOf", "to_node_data"]

Pattern = tuple[str, ...]
NodeKey = tuple[str, Pattern]
"""(stage, pattern)."""


class PatternOf(Protocol):
    """What :func:`to_node_data` asks of a stage's grouping (``tracer.grouping.StageGrouping``, which needs torch,
    or a stored map)."""

    def pattern(self, path: str) -> Pattern: ...


@define
class NodeData:
    table: dict[tuple[str, Pattern, str, str], Counters] = field(factory=dict)
    """(stage, pattern, category, op) -> the op's counters (``kernels``: its calls, as in ``RawTrace.table``)."""
    calls: dict[NodeKey, int] = field(factory=dict)
    peaks: dict[NodeKey, int] = field(factory=dict)
    kv_held: dict[NodeKey, int] = field(factory=dict)

    def add(self, other: NodeData) -> None:
        """Sum ``other`` into this (peaks: max; KV held: max, as both describe the end of a stage)."""
        accumulate(self, other)


def to_node_data(raw: RawTrace, groupings: Mapping[str, PatternOf]) -> NodeData:
    """Map concrete paths to patterns: sums for counters and calls and KV held, max for peaks."""
    data = NodeData()
    for (stage, path, cat, op), row in raw.table.items():
        key = (stage, groupings[stage].pattern(path), cat, op)
        mine = data.table.get(key)
        if mine is None:
            data.table[key] = row.copy()
        else:
            mine.add(row)
    for (stage, path), n in raw.calls.items():
        nk = (stage, groupings[stage].pattern(path))
        data.calls[nk] = data.calls.get(nk, 0) + n
    for (stage, path), n in raw.peaks.items():
        nk = (stage, groupings[stage].pattern(path))
        data.peaks[nk] = max(data.peaks.get(nk, 0), n)
    for (stage, path), n in raw.kv_held.items():
        nk = (stage, groupings[stage].pattern(path))
        data.kv_held[nk] = data.kv_held.get(nk, 0) + n
    return data
