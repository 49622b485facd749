"""The op ledger (every op that ran, with its bucket) and the unsupported list; uncalled modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.nodedata import NodeData
from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.tracer.result import OpLedgerEntry, UnsupportedOp
from llm_perf_opt.tracer.rollup import node_id

if TYPE_CHECKING:  # the index needs torch; the ledger does not
    from llm_perf_opt.tracer.index import ModelIndex

__all__ = ["build_ledger", "uncalled_modules"]


def build_ledger(
    data: NodeData, buckets: Mapping[str, tuple[str, str, str]]
) -> tuple[dict[str, OpLedgerEntry], tuple[UnsupportedOp, ...]]:
    """Per op: bucket, rule, count and total cost; and the unsupported ops with the node ids they ran in."""
    sums: dict[str, Counters] = {}
    where: dict[str, set[str]] = {}
    for (stage, pattern, _, op), row in data.table.items():
        acc = sums.get(op)
        if acc is None:
            sums[op] = row.copy()
        else:
            acc.add(row)
        if buckets[op][0] == "unsupported":
            where.setdefault(op, set()).add(node_id(stage, pattern))
    ledger: dict[str, OpLedgerEntry] = {}
    for op in sorted(sums):
        bucket, rule, reason = buckets[op]
        row = sums[op]
        ledger[op] = OpLedgerEntry(
            op=op,
            bucket=bucket,  # type: ignore[arg-type]
            rule=rule,
            reason=reason,
            count=row.kernels,
            cost=row.to_cost(kernels=bucket == "counted"),
        )
    unsupported = tuple(
        UnsupportedOp(op=op, count=sums[op].kernels, module_paths=tuple(sorted(where[op]))) for op in sorted(where)
    )
    return ledger, unsupported


def uncalled_modules(index: ModelIndex, raws: Sequence[RawTrace]) -> tuple[str, ...]:
    """``named_modules()`` paths whose whole subtree saw no call and no op in any traced pass.

    A module run through ``module.forward(...)`` fires no hook, but when its children were called it is not
    listed (CLIP's attention and MLP); ModuleList/ModuleDict containers are never called and never listed.
    """
    active: set[str] = set()
    for raw in raws:
        active.update(path for (_, path) in raw.calls)
        active.update(path for (_, path, _, _) in raw.table)
    reached = set(active)
    for path in active:
        while path:
            path = path.rpartition(".")[0]
            reached.add(path)
    return tuple(path for path, _ in index.entries if path not in reached and path not in index.list_paths)
