"""The counted fields of every node, rolled up from node-level counters (torch-free).

:class:`StageRollup` sums one stage's op rows up the pattern tree (inclusive costs per category; ops that are not
counted launch no kernel), keeps each pattern's own calls, takes peaks as maxima and sums KV held.  The tree builder
(:mod:`llm_perf_opt.tracer.tree`) adds what needs the module tree (classes, weights, repetition); a trace derived
without torch (:mod:`llm_perf_opt.tracer.derive`) reuses those from an earlier trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import field, frozen

from llm_perf_opt.contracts.vocab import Stage
from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.categories import CATEGORY_IDS
from llm_perf_opt.tracer.nodedata import NodeData, Pattern

__all__ = ["STAGE_ORDER", "RootCounts", "StageRollup", "active_stages", "node_id", "ordered_categories", "root_counts"]

STAGE_ORDER: tuple[Stage, ...] = ("vision", "projector", "prefill", "decode", "other")


def node_id(stage: str, pattern: Pattern) -> str:
    return f"{stage}/{'.'.join(pattern)}" if pattern else stage


def active_stages(data: NodeData) -> list[str]:
    """The stages with an op row or a call, in :data:`STAGE_ORDER`."""
    seen = {k[0] for k in data.table} | {k[0] for k in data.calls}
    return [s for s in STAGE_ORDER if s in seen]


def ordered_categories(cats: Mapping[str, Cost]) -> dict[str, Cost]:
    """``cats`` in the order of the category table."""
    return {c: cats[c] for c in CATEGORY_IDS if c in cats}


@frozen(kw_only=True)
class RootCounts:
    """The root's counted fields from its stages: costs summed, peak and KV held the largest stage's."""

    cost: Cost = field(metadata={"help": "inclusive cost: the sum of the stages'"})
    by_category: dict[str, Cost] = field(metadata={"help": "that cost per category, in category order"})
    peak_activation_bytes: int = field(metadata={"help": "the largest stage peak"})
    kv_cache_bytes: int = field(metadata={"help": "the largest KV held at a stage's end"})


def root_counts(rollups: Iterable[StageRollup]) -> RootCounts:
    """The root's counted fields from its stages' roll-ups (costs summed in the order given)."""
    stages = list(rollups)
    total = Cost()
    cats: dict[str, Cost] = {}
    for roll in stages:
        for cat, cost in roll.costs.get((), {}).items():
            cats[cat] = cats[cat] + cost if cat in cats else cost
            total = total + cost
    return RootCounts(
        cost=total,
        by_category=ordered_categories(cats),
        peak_activation_bytes=max((r.peaks.get((), 0) for r in stages), default=0),
        kv_cache_bytes=max((r.kv.get((), 0) for r in stages), default=0),
    )


class StageRollup:
    """Inclusive roll-up of one stage: ``costs`` (per category), ``calls`` (a pattern's own), ``peaks`` (maxima),
    ``kv`` (sums), and ``nodes``: every active pattern with all its ancestors."""

    def __init__(self, stage: str, data: NodeData, counted: frozenset[str]) -> None:
        self.stage = stage
        sums: dict[Pattern, dict[str, Counters]] = {}
        active: set[Pattern] = set()
        for (st, pat, cat, op), row in data.table.items():
            if st != stage:
                continue
            active.add(pat)
            if op not in counted:  # a zero-cost or unsupported op launches no kernel
                row = row.copy()
                row.kernels = 0
            for depth in range(len(pat) + 1):
                acc = sums.setdefault(pat[:depth], {}).get(cat)
                if acc is None:
                    sums[pat[:depth]][cat] = row.copy()
                else:
                    acc.add(row)
        self.costs: dict[Pattern, dict[str, Cost]] = {
            pat: {cat: row.to_cost() for cat, row in cats.items() if row.any()} for pat, cats in sums.items()
        }
        self.calls = {pat: n for (st, pat), n in data.calls.items() if st == stage}
        active.update(self.calls)
        self.nodes: set[Pattern] = {pat[:depth] for pat in active for depth in range(len(pat) + 1)}
        self.peaks = _max_up({pat: n for (st, pat), n in data.peaks.items() if st == stage})
        self.kv = _sum_up({pat: n for (st, pat), n in data.kv_held.items() if st == stage})

    def category_costs(self, pat: Pattern) -> dict[str, Cost]:
        """The inclusive cost of ``pat`` per category, in category order."""
        return ordered_categories(self.costs.get(pat, {}))


def _max_up(values: Mapping[Pattern, int]) -> dict[Pattern, int]:
    out: dict[Pattern, int] = {}
    for pat, n in values.items():
        for depth in range(len(pat) + 1):
            anc = pat[:depth]
            out[anc] = max(out.get(anc, 0), n)
    return out


def _sum_up(values: Mapping[Pattern, int]) -> dict[Pattern, int]:
    out: dict[Pattern, int] = {}
    for pat, n in values.items():
        for depth in range(len(pat) + 1):
            out[pat[:depth]] = out.get(pat[:depth], 0) + n
    return out
