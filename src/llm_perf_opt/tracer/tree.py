"""Build the :class:`TracedNode` tree from node-level counters: inclusive roll-up, weights, peaks, KV.

Node ids (docs/architecture.md): ``root``; the stage names; ``<stage>/<pattern>``.  A node exists for every
pattern with activity in the stage (a call or an op) and for all its ancestors.  Inclusive metrics: costs, calls
of descendants are *not* added (calls are the node's own), KV held is summed, peaks are maxima.  Weight bytes of
a node are the unique parameter bytes owned by modules whose pattern is a node of that stage under it (a module
never touched in the stage, such as CLIP's unused patch conv, is not counted there); the root holds every
parameter of the model.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen
from torch import nn

from llm_perf_opt.contracts.vocab import Repetition
from llm_perf_opt.core import Cost
from llm_perf_opt.tracer.grouping import StageGrouping, constructor_params, qualified_class_name
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.nodedata import NodeData, Pattern
from llm_perf_opt.tracer.result import TracedNode
from llm_perf_opt.tracer.rollup import STAGE_ORDER, StageRollup, active_stages, node_id, root_counts

__all__ = ["STAGE_ORDER", "StageMeta", "build_nodes", "node_id"]


@frozen(kw_only=True)
class StageMeta:
    """Facts the tree needs beyond the counters."""

    decode_steps: int
    root_calls: int
    counted_ops: frozenset[str]


class _StageTree(StageRollup):
    """Roll-up of one stage (:class:`StageRollup`) with the module tree's members and weights."""

    def __init__(
        self, stage: str, index: ModelIndex, grouping: StageGrouping, data: NodeData, counted: frozenset[str]
    ) -> None:
        super().__init__(stage, data, counted)
        self.index = index
        self.grouping = grouping
        self.members: dict[Pattern, list[tuple[str, nn.Module]]] = {}
        for path, module in index.entries:
            pat = grouping.pattern(path)
            if pat in self.nodes:
                self.members.setdefault(pat, []).append((path, module))
        self.weights = self._weights()

    def _weights(self) -> dict[Pattern, int]:
        owned: dict[Pattern, dict[int, int]] = {}
        for pat, modules in self.members.items():
            for path, _ in modules:
                for pid, nbytes in self.index.own_params[path]:
                    for depth in range(len(pat) + 1):
                        owned.setdefault(pat[:depth], {})[pid] = nbytes
        return {pat: sum(ids.values()) for pat, ids in owned.items()}

    def repetition(self, pat: Pattern) -> tuple[Repetition, int | None]:
        first_path = self.members[pat][0][0] if self.members.get(pat) else None
        if first_path is None or not pat:
            return "none", None
        parent, _, name = first_path.rpartition(".")
        group = self.grouping.groups.get((parent, int(name))) if name.isdigit() else None
        if group is None or len(group.members) < 2:
            return "none", None
        return group.repetition, len(group.members)  # type: ignore[return-value]


def _name(stage: str, pattern: Pattern) -> str:
    if not pattern:
        return stage
    if pattern[-1][:1].isdigit() or pattern[-1].startswith("{"):
        return ".".join(pattern[-2:])
    return pattern[-1]


def build_nodes(
    index: ModelIndex, groupings: Mapping[str, StageGrouping], data: NodeData, meta: StageMeta
) -> dict[str, TracedNode]:
    """All nodes, parents before children (root, then each stage depth-first in module order)."""
    root = index.root
    order = index.order
    stages = active_stages(data)
    trees = {s: _StageTree(s, index, groupings[s], data, meta.counted_ops) for s in stages}
    nodes: dict[str, TracedNode] = {}
    root_cls = qualified_class_name(root)
    counts = root_counts(trees[s] for s in stages)
    nodes["root"] = TracedNode(
        module_id="root",
        name=type(root).__name__,
        path="",
        qualified_class_name=root_cls,
        stage="other",
        parent_id=None,
        children=tuple(stages),
        repetition="none",
        repetition_count=None,
        constructor_params=constructor_params(root),
        calls=meta.root_calls,
        cost=counts.cost,
        by_category=counts.by_category,
        weight_bytes=index.total_weight_bytes(),
        peak_activation_bytes=counts.peak_activation_bytes,
        kv_cache_bytes=counts.kv_cache_bytes,
    )
    for s in stages:
        _emit_stage(trees[s], order, meta, nodes)
    return nodes


def _emit_stage(tree: _StageTree, order: Mapping[str, int], meta: StageMeta, nodes: dict[str, TracedNode]) -> None:
    stage = tree.stage
    children: dict[Pattern, list[Pattern]] = {}
    for pat in tree.nodes:
        if pat:
            children.setdefault(pat[:-1], []).append(pat)

    def first(pat: Pattern) -> int:
        members = tree.members.get(pat)
        return min(order[p] for p, _ in members) if members else 1 << 30

    stack: list[Pattern] = [()]
    while stack:
        pat = stack.pop()
        kids = sorted(children.get(pat, []), key=first)
        module = tree.members[pat][0][1] if tree.members.get(pat) else None
        repetition, count = tree.repetition(pat)
        if not pat and stage == "decode":
            repetition, count = "for", meta.decode_steps
        cost_cats = tree.category_costs(pat)
        nodes[node_id(stage, pat)] = TracedNode(
            module_id=node_id(stage, pat),
            name=_name(stage, pat),
            path=".".join(pat),
            qualified_class_name=qualified_class_name(module) if module is not None else "",
            stage=stage,  # type: ignore[arg-type]
            parent_id=node_id(stage, pat[:-1]) if pat else "root",
            children=tuple(node_id(stage, k) for k in kids),
            repetition=repetition,
            repetition_count=count,
            constructor_params=constructor_params(module) if module is not None else {},
            calls=tree.calls.get(pat, 0),
            cost=Cost.total(cost_cats.values()),
            by_category=cost_cats,
            weight_bytes=tree.weights.get(pat, 0),
            peak_activation_bytes=tree.peaks.get(pat, 0),
            kv_cache_bytes=tree.kv.get(pat, 0),
        )
        stack.extend(reversed(kids))
