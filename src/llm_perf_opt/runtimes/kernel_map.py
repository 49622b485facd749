"""How a runtime turns the counted ops of each module class into the kernels it launches.

A :class:`UnitRule` names a module class whose whole subtree one runtime runs as a fixed set of kernels per call
(e.g. vLLM's attention block: a merged QKV GEMM, a rotary kernel, a KV-cache write, one flash kernel, the output
GEMM).  :func:`fuse_tree` applies a runtime's rules to a cost tree node by node:

* FLOPs never change (every node keeps its counted FLOPs per category);
* kernels: a unit node carries ``kernels_per_call * calls`` kernels, its descendants none (they are inside the
  unit's kernels);
* bytes: weight and KV traffic stay as counted, and so does the activation traffic of GEMMs (``linear``: a
  GEMM reads its input and writes its output however it is launched); the other activation traffic of every node
  in a unit (norms, activations, elementwise, routing, data movement: pointwise chains) is scaled by
  ``K_fused / K_eager`` of the unit (capped at 1): each kernel the runtime removes takes its intermediate round
  trip through DRAM with it.  This is a proxy: it leaves out that a fused kernel's input and output sizes differ
  from the average eager op's, and the merged QKV / gate-up GEMMs reading their input once instead of 2-3 times.

Nodes outside every unit stay as counted (eager).  Rules apply only to the decoder stages (prefill, decode);
vision and projector are counted eager for every runtime (listed as unmapped by the runtime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.perf.tree import stage_of

__all__ = [
    "AS_COUNTED",
    "DECODER_STAGES",
    "FusedNode",
    "RuntimeNode",
    "UnitRule",
    "fuse_tree",
    "nodes_from_traced",
    "runtime_nodes",
    "unit_of",
]

DECODER_STAGES: tuple[str, ...] = ("prefill", "decode")
AS_COUNTED = -1
"""``kernels_per_call`` of a unit the runtime runs op by op, as traced (its graphability still applies)."""


@frozen(kw_only=True)
class UnitRule:
    """One module class run as a fixed set of kernels per call by one runtime."""

    kernels_per_call: int = field(metadata={"help": "kernels launched per call of the module (its whole subtree)"})
    kernels: tuple[str, ...] = field(default=(), metadata={"help": "the kernels, in launch order (names)"})
    source: str = field(default="", metadata={"help": "the runtime source file and version the rule was read from"})
    graphable: bool = field(default=True, metadata={"help": "can run inside a captured CUDA graph"})
    scope: str = field(
        default="subtree",
        metadata={"help": "subtree: the module and everything under it; own: only the module's own ops (containers)"},
    )


@frozen(kw_only=True)
class RuntimeNode:
    """What :func:`fuse_tree` reads of one node: class, calls, children and inclusive cost per category."""

    class_name: str | None
    calls: int
    children: tuple[str, ...]
    by_category: Mapping[str, Cost]


@frozen(kw_only=True)
class FusedNode:
    """A node as the runtime runs it: inclusive cost per category (FLOPs as counted), its unit and graphability."""

    by_category: Mapping[str, Cost]
    own: Mapping[str, Cost]
    unit: str | None = field(metadata={"help": "id of the unit node whose kernels cover this node (None: eager)"})
    graphable: bool = True


def unit_of(
    node_id: str, nodes: Mapping[str, RuntimeNode], parents: Mapping[str, str], rules: Mapping[str, UnitRule]
) -> str | None:
    """The unit whose kernels cover ``node_id``'s own ops: the outermost ancestor-or-self whose class has a
    ``subtree`` rule, else the node itself when its class has an ``own`` rule, else None (eager).  Decoder stages
    only."""
    if stage_of(node_id) not in DECODER_STAGES:
        return None
    found = None
    cur: str | None = node_id
    while cur is not None and cur in nodes:
        rule = rules.get(nodes[cur].class_name or "")
        if rule is not None and rule.scope == "subtree":
            found = cur
        cur = parents.get(cur)
    if found is None:
        rule = rules.get(nodes[node_id].class_name or "")
        if rule is not None and rule.scope == "own":
            found = node_id
    return found


def _minus(a: Cost, b: Cost) -> Cost:
    return Cost(**{k: v - b.as_dict()[k] for k, v in a.as_dict().items()})


def _own(nodes: Mapping[str, RuntimeNode]) -> dict[str, dict[str, Cost]]:
    own: dict[str, dict[str, Cost]] = {}
    for nid, node in nodes.items():
        mine: dict[str, Cost] = {}
        for cat, cost in node.by_category.items():
            kids = Cost.total(nodes[c].by_category.get(cat, Cost()) for c in node.children if c in nodes)
            rest = _minus(cost, kids)
            if rest != Cost():
                mine[cat] = rest
        own[nid] = mine
    return own


def _scaled_activation(cost: Cost, ratio: float) -> Cost:
    act_read = cost.bytes_read - cost.weight_bytes_read - cost.kv_bytes_read
    act_written = cost.bytes_written - cost.kv_bytes_written
    return Cost(
        matmul_flops=cost.matmul_flops,
        matmul_flops_executed=cost.matmul_flops_executed,
        vector_flops=cost.vector_flops,
        bytes_read=cost.weight_bytes_read + cost.kv_bytes_read + int(act_read * ratio),
        bytes_written=cost.kv_bytes_written + int(act_written * ratio),
        weight_bytes_read=cost.weight_bytes_read,
        kv_bytes_read=cost.kv_bytes_read,
        kv_bytes_written=cost.kv_bytes_written,
        kernels=0,
    )


def _split_kernels(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``total`` kernels over categories in proportion to ``weights`` (largest remainder; ties by name)."""
    if not weights or total == 0:
        return {}
    wsum = sum(weights.values())
    if wsum == 0:
        first = sorted(weights)[0]
        return {first: total}
    exact = {c: total * w / wsum for c, w in weights.items()}
    out = {c: int(v) for c, v in exact.items()}
    rest = total - sum(out.values())
    for c in sorted(exact, key=lambda c: (-(exact[c] - out[c]), c))[:rest]:
        out[c] += 1
    return out


def fuse_tree(nodes: Mapping[str, RuntimeNode], rules: Mapping[str, UnitRule]) -> dict[str, FusedNode]:
    """Apply ``rules`` (class -> :class:`UnitRule`) to ``nodes`` (id -> :class:`RuntimeNode`): see the module doc."""
    parents = {c: nid for nid, node in nodes.items() for c in node.children}
    own = _own(nodes)
    units = {nid: unit_of(nid, nodes, parents, rules) for nid in nodes}
    new_own: dict[str, dict[str, Cost]] = {}
    for nid, costs in own.items():
        unit = units[nid]
        if unit is None:
            new_own[nid] = dict(costs)
            continue
        rule = rules[nodes[unit].class_name or ""]
        if rule.kernels_per_call == AS_COUNTED:  # runs as traced: every op stays on the node that counted it
            new_own[nid] = dict(costs)
            continue
        scope_costs = own[unit] if rule.scope == "own" else nodes[unit].by_category
        eager_k = sum(c.kernels for c in scope_costs.values())
        fused_k = eager_k if rule.kernels_per_call == AS_COUNTED else rule.kernels_per_call * nodes[unit].calls
        ratio = min(1.0, fused_k / eager_k) if eager_k else 1.0
        mine = {cat: _scaled_activation(cost, 1.0 if cat == "linear" else ratio) for cat, cost in costs.items()}
        if nid == unit:
            weights = {cat: c.kernels for cat, c in scope_costs.items()}
            for cat, k in _split_kernels(min(fused_k, eager_k), weights).items():
                mine[cat] = mine.get(cat, Cost()) + Cost(kernels=k)
        new_own[nid] = {cat: c for cat, c in mine.items() if c != Cost()}
    inclusive: dict[str, dict[str, Cost]] = {}

    def visit(nid: str) -> dict[str, Cost]:
        if nid in inclusive:
            return inclusive[nid]
        total = dict(new_own[nid])
        for child in nodes[nid].children:
            for cat, cost in visit(child).items():
                total[cat] = total.get(cat, Cost()) + cost
        inclusive[nid] = total
        return total

    out: dict[str, FusedNode] = {}
    for nid in nodes:
        unit = units[nid]
        graphable = True if unit is None else rules[nodes[unit].class_name or ""].graphable
        out[nid] = FusedNode(by_category=visit(nid), own=new_own[nid], unit=unit, graphable=graphable)
    return out


def runtime_nodes(
    children: Mapping[str, Sequence[str]],
    by_category: Mapping[str, Mapping[str, Cost]],
    calls: Mapping[str, int],
    classes: Mapping[str, str | None],
) -> dict[str, RuntimeNode]:
    """Zip the per-node maps of a cost tree (analytic or traced) into :class:`RuntimeNode` s."""
    return {
        nid: RuntimeNode(
            class_name=classes.get(nid),
            calls=int(calls.get(nid, 0)),
            children=tuple(children.get(nid, ())),
            by_category=by_category[nid],
        )
        for nid in by_category
    }


def nodes_from_traced(nodes: Mapping[str, Any]) -> dict[str, RuntimeNode]:
    """The traced tree (``TraceResult.nodes``: anything with ``qualified_class_name``, ``calls``, ``children`` and
    ``by_category``) as :class:`RuntimeNode` s; class names are taken short (after the last dot)."""
    return {
        nid: RuntimeNode(
            class_name=str(node.qualified_class_name).rsplit(".", 1)[-1],
            calls=int(node.calls),
            children=tuple(node.children),
            by_category=dict(node.by_category),
        )
        for nid, node in nodes.items()
    }
