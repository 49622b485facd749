"""What a trace returns: torch-free attrs classes that ``report`` and ``analytic`` consume without torch.

A :class:`TraceResult` holds one :class:`~llm_perf_opt.core.tree.CostNode` per node of the module tree (ids as in
docs/architecture.md: ``root``, the stage names, ``<stage>/<path>`` with grouped indices; :attr:`TraceResult.tree`
is the same nodes as the project's one :class:`~llm_perf_opt.core.tree.CostTree`), the op ledger (every aten op
that ran, in exactly one bucket: counted by a formula, zero-cost by a named rule, or unsupported) and how decode was
covered.  Every metric of a node is inclusive (its own ops plus its descendants') and a total over all calls, all
members of a group and all decode steps; peaks are maxima, never sums.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal, TypeAlias

from attrs import evolve, field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostNode, CostTree

__all__ = [
    "BatchMethod",
    "Bucket",
    "DecodeMethod",
    "OpLedgerEntry",
    "TraceResult",
    "TracedNode",
    "UnsupportedOp",
]

Bucket: TypeAlias = Literal["counted", "zero-cost", "unsupported"]
DecodeMethod: TypeAlias = Literal["affine-fit", "every-step", "none"]
BatchMethod: TypeAlias = Literal["traced", "extrapolated"]


@frozen(kw_only=True)
class UnsupportedOp:
    """An aten op with no formula and no zero-cost rule: it ran, was not costed, and every report lists it."""

    op: str = field(metadata={"help": "aten op overload, e.g. aten.nonzero.default"})
    count: int = field(metadata={"help": "times it ran over the whole workload"})
    module_paths: tuple[str, ...] = field(metadata={"help": "sorted module ids of the innermost calls it ran in"})


@frozen(kw_only=True)
class OpLedgerEntry:
    """One aten op (or the fused SDPA op) over the whole workload, with the bucket that accounts for it."""

    op: str = field(metadata={"help": "aten op overload name, or 'F.scaled_dot_product_attention' (fused)"})
    bucket: Bucket = field(metadata={"help": "counted | zero-cost | unsupported"})
    rule: str = field(metadata={"help": "formula family (counted) or rule name (zero-cost); '' if unsupported"})
    reason: str = field(metadata={"help": "what the rule charges, or why the op is free"})
    count: int = field(metadata={"help": "times it ran over the whole workload (decode integrated)"})
    cost: Cost = field(factory=Cost, metadata={"help": "total cost of these calls"})


TracedNode: TypeAlias = CostNode
"""A traced node is a :class:`~llm_perf_opt.core.tree.CostNode` with every field filled (the one node type)."""


@frozen(kw_only=True)
class TraceResult:
    """The whole traced workload: node tree, op ledger, and how each part was obtained."""

    model: str = field(metadata={"help": "model source description (class and variant)"})
    workload: str = field(metadata={"help": "workload description (mode, page, S, max_new_tokens)"})
    seq_len: int = field(metadata={"help": "prefill length S"})
    max_new_tokens: int = field(metadata={"help": "N: prefill gives token 1, N-1 decode steps follow"})
    attention: Literal["flash", "eager"] = field(metadata={"help": "attention kernel the counts assume"})
    routing: str = field(metadata={"help": "MoE routing model used (RoutingModel.describe())"})
    decode_method: DecodeMethod = field(metadata={"help": "affine-fit | every-step | none (no decode steps)"})
    decode_note: str = field(metadata={"help": "which steps were traced, and why a fallback happened if it did"})
    nodes: Mapping[str, TracedNode] = field(metadata={"help": "module_id -> node, parents before children"})
    op_ledger: Mapping[str, OpLedgerEntry] = field(metadata={"help": "op -> ledger entry, every op that ran"})
    unsupported: tuple[UnsupportedOp, ...] = field(metadata={"help": "ops with no formula and no rule"})
    uncalled_modules: tuple[str, ...] = field(metadata={"help": "named_modules() paths never called"})
    categories: Mapping[str, tuple[str, ...]] = field(metadata={"help": "category id -> match_classes"})
    batch_method: BatchMethod = field(
        default="traced", metadata={"help": "traced (every row) | extrapolated (vision stages from small batches)"}
    )
    batch_note: str = field(default="", metadata={"help": "which batches were traced, and why a fallback happened"})

    @property
    def tree(self) -> CostTree:
        """The nodes as the project's one cost tree (a view, no copy)."""
        return CostTree(self.nodes)

    def at_element_bytes(self, *, counted: int, target: int) -> TraceResult:
        """This trace with every byte count (costs, categories, weights, peaks, KV, op ledger) moved from
        ``counted`` to ``target`` bytes per element (``llm_perf_opt.core.counts.rescale_bytes``): the one rescale
        every report reads for a dtype other than the traced one."""
        if counted == target:
            return self
        nodes = {nid: node.at_element_bytes(counted=counted, target=target) for nid, node in self.nodes.items()}
        ledger = {
            op: evolve(entry, cost=entry.cost.at_element_bytes(counted=counted, target=target))
            for op, entry in self.op_ledger.items()
        }
        return evolve(self, nodes=nodes, op_ledger=ledger)

    @property
    def root(self) -> TracedNode:
        return self.nodes["root"]

    def node(self, module_id: str) -> TracedNode:
        """The node with this id (KeyError names the close ids)."""
        return self.tree.node(module_id)

    def walk(self, module_id: str = "root") -> Iterator[TracedNode]:
        """Depth-first, parents first, children in their stored order."""
        return self.tree.walk(module_id)

    def category_flops(self, module_id: str = "root") -> dict[str, int]:
        """Total (executed matmul + vector) FLOPs per category of a node."""
        return {cat: cost.total_flops for cat, cost in self.node(module_id).by_category.items()}

    def other_flops_share(self, module_id: str = "root") -> float:
        """Share of a node's FLOPs in the ``other`` category (0.0 when the node has no FLOPs)."""
        flops = self.category_flops(module_id)
        total = sum(flops.values())
        return flops.get("other", 0) / total if total else 0.0
