"""The torch-free input the time model reads: a tree of nodes with inclusive costs per operator category.

Protocol: a mapping ``node_id -> CostNode(children=(ids...), by_category={category: Cost})`` where every Cost is
**inclusive** (the node's own ops plus all descendants, over all calls and repetitions: docs/architecture.md).
Both the traced tree (``TracedNode`` has ``children`` and ``by_category``: :func:`tree_from_nodes`) and the analytic
model (costs keyed by module id, the tree implied by the ids: :func:`tree_from_ids`) convert to it.

The time model needs each node's *own* ops (inclusive minus the children's inclusive), which
:func:`exclusive_by_category` derives; a node whose children cost more than it does is an inconsistent input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from attrs import field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import COST_FIELDS
from llm_perf_opt.core.paths import split_module_path

__all__ = [
    "ROOT_ID",
    "STAGES",
    "CostNode",
    "CostTree",
    "NodeLike",
    "exclusive_by_category",
    "id_components",
    "parent_candidates",
    "roots_of",
    "stage_of",
    "tree_from_ids",
    "tree_from_nodes",
]

ROOT_ID = "root"
STAGES: tuple[str, ...] = ("vision", "projector", "prefill", "decode", "other")


def _as_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _as_dict(value: Mapping[str, Cost]) -> dict[str, Cost]:
    return dict(value)


@frozen(kw_only=True)
class CostNode:
    """One node: its children's ids and its inclusive cost per operator category."""

    children: tuple[str, ...] = field(default=(), converter=_as_tuple, metadata={"help": "child node ids"})
    by_category: Mapping[str, Cost] = field(
        factory=dict, converter=_as_dict, metadata={"help": "inclusive cost per operator category"}
    )


CostTree = Mapping[str, CostNode]
"""node id -> :class:`CostNode`."""


class NodeLike(Protocol):
    """What :func:`tree_from_nodes` reads from a node (``TracedNode`` fits)."""

    @property
    def children(self) -> Sequence[str]: ...

    @property
    def by_category(self) -> Mapping[str, Cost]: ...


def tree_from_nodes(nodes: Mapping[str, NodeLike] | Iterable[NodeLike]) -> dict[str, CostNode]:
    """Convert nodes with ``children`` and ``by_category``: a mapping id -> node (e.g. ``TraceResult.nodes``), or an
    iterable of nodes that carry their id as ``module_id``."""
    pairs = nodes.items() if isinstance(nodes, Mapping) else ((_module_id(node), node) for node in nodes)
    return {nid: CostNode(children=node.children, by_category=node.by_category) for nid, node in pairs}


def _module_id(node: NodeLike) -> str:
    module_id = getattr(node, "module_id", None)
    if not isinstance(module_id, str):
        raise TypeError(f"a node given without a mapping must carry its id as module_id, got {type(node).__name__}")
    return module_id


def stage_of(node_id: str) -> str:
    """``"prefill/model.layers.0"`` -> ``prefill``; a stage node is its own stage; ``root`` -> ``other``."""
    head = node_id.split("/", 1)[0]
    return head if head in STAGES else "other"


def id_components(path: str) -> list[str]:
    """Split a module path on dots outside braces: ``a.{1..11}.b`` -> ``[a, {1..11}, b]``."""
    return list(split_module_path(path))


def parent_candidates(node_id: str) -> list[str]:
    """Possible parents nearest first: ``s/a.b.c`` -> ``s/a.b``, ``s/a``, ``s``, ``root``; ``s`` -> ``root``."""
    if node_id == ROOT_ID:
        return []
    stage, sep, path = node_id.partition("/")
    if not sep:
        return [ROOT_ID]
    parts = id_components(path)
    return [f"{stage}/{'.'.join(parts[:n])}" for n in range(len(parts) - 1, 0, -1)] + [stage, ROOT_ID]


def tree_from_ids(by_category: Mapping[str, Mapping[str, Cost]]) -> dict[str, CostNode]:
    """Build the tree an analytic cost map implies: each node's parent is its nearest present ancestor id."""
    children: dict[str, list[str]] = {nid: [] for nid in by_category}
    for nid in sorted(by_category):
        parent = next((p for p in parent_candidates(nid) if p in by_category), None)
        if parent is not None:
            children[parent].append(nid)
    return {nid: CostNode(children=children[nid], by_category=costs) for nid, costs in by_category.items()}


def roots_of(tree: CostTree) -> list[str]:
    """Nodes that are nobody's child, in sorted order (one, ``root``, for a well-formed tree)."""
    child_ids = {c for node in tree.values() for c in node.children}
    return sorted(nid for nid in tree if nid not in child_ids)


def _minus(total: Cost, part: Cost, where: str) -> Cost:
    values: dict[str, int] = {}
    for name in COST_FIELDS:
        diff = getattr(total, name) - getattr(part, name)
        if diff < 0:
            raise ValueError(
                f"{where}: children's {name} ({getattr(part, name)}) exceeds the node's ({getattr(total, name)})"
            )
        values[name] = diff
    return Cost(**values)


def exclusive_by_category(tree: CostTree) -> dict[str, dict[str, Cost]]:
    """Each node's own ops per category: inclusive minus the sum of its children's inclusive; zero costs dropped."""
    own: dict[str, dict[str, Cost]] = {}
    for nid, node in tree.items():
        missing = [c for c in node.children if c not in tree]
        if missing:
            raise ValueError(f"node {nid!r} lists children not in the tree: {', '.join(missing)}")
        categories = set(node.by_category).union(*(tree[c].by_category for c in node.children))
        mine: dict[str, Cost] = {}
        for cat in sorted(categories):
            kids = Cost.total(tree[c].by_category.get(cat, Cost()) for c in node.children)
            rest = _minus(node.by_category.get(cat, Cost()), kids, f"node {nid!r} category {cat!r}")
            if rest != Cost():
                mine[cat] = rest
        own[nid] = mine
    return own
