"""What a trace returns: torch-free attrs classes that ``report`` and ``analytic`` consume without torch.

A :class:`TraceResult` holds one :class:`TracedNode` per node of the module tree (ids as in docs/architecture.md:
``root``, the stage names, ``<stage>/<path>`` with grouped indices), the op ledger (every aten op that ran, in
exactly one bucket: counted by a formula, zero-cost by a named rule, or unsupported) and how decode was covered.
Every metric of a node is inclusive (its own ops plus its descendants') and a total over all calls, all members
of a group and all decode steps; peaks are maxima, never sums.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal, TypeAlias

from attrs import evolve, field, frozen

from llm_perf_opt.contracts.vocab import ParamValue, Repetition, Stage
from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import rescale_bytes

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


@frozen(kw_only=True)
class TracedNode:
    """One node of the traced module tree; metrics are inclusive totals (see module docstring)."""

    module_id: str = field(metadata={"help": "root | <stage> | <stage>/<path with grouped indices>"})
    name: str = field(metadata={"help": "short display name (last path components)"})
    path: str = field(metadata={"help": "named_modules() path of the traced root, with group patterns; '' for stages"})
    qualified_class_name: str = field(metadata={"help": "module class, no transformers_modules.<hash> prefix"})
    stage: Stage = field(metadata={"help": "vision | projector | prefill | decode | other"})
    parent_id: str | None = field(metadata={"help": "parent node id; None for the root"})
    children: tuple[str, ...] = field(metadata={"help": "child node ids in first-call order"})
    repetition: Repetition = field(metadata={"help": "none | for (sequential) | parfor (independent)"})
    repetition_count: int | None = field(metadata={"help": "members of this group (its own index set); None if none"})
    constructor_params: Mapping[str, ParamValue] = field(metadata={"help": "shape-relevant module attributes"})
    calls: int = field(metadata={"help": "forward calls over the workload, all members and decode steps"})
    cost: Cost = field(metadata={"help": "inclusive cost (Cost counters, exact integers)"})
    by_category: Mapping[str, Cost] = field(metadata={"help": "inclusive cost split by operator category id"})
    weight_bytes: int = field(metadata={"help": "unique parameter bytes held under this node"})
    peak_activation_bytes: int = field(metadata={"help": "max live activation bytes while this node runs (a max)"})
    kv_cache_bytes: int = field(metadata={"help": "KV-cache bytes this node holds at the end of its stage"})

    @property
    def category_calls(self) -> dict[str, int]:
        """Operator (kernel) calls per category."""
        return {cat: cost.kernels for cat, cost in self.by_category.items()}


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

    def at_element_bytes(self, *, counted: int, target: int) -> TraceResult:
        """This trace with every byte count (costs, categories, weights, peaks, KV, op ledger) moved from
        ``counted`` to ``target`` bytes per element (``llm_perf_opt.core.counts.rescale_bytes``): the one rescale
        every report reads for a dtype other than the traced one."""
        if counted == target:
            return self

        def width(cost: Cost) -> Cost:
            return cost.at_element_bytes(counted=counted, target=target)

        def size(n: int) -> int:
            return rescale_bytes(n, counted=counted, target=target)

        nodes = {
            nid: evolve(
                node,
                cost=width(node.cost),
                by_category={cat: width(cost) for cat, cost in node.by_category.items()},
                weight_bytes=size(node.weight_bytes),
                peak_activation_bytes=size(node.peak_activation_bytes),
                kv_cache_bytes=size(node.kv_cache_bytes),
            )
            for nid, node in self.nodes.items()
        }
        ledger = {op: evolve(entry, cost=width(entry.cost)) for op, entry in self.op_ledger.items()}
        return evolve(self, nodes=nodes, op_ledger=ledger)

    @property
    def root(self) -> TracedNode:
        return self.nodes["root"]

    def node(self, module_id: str) -> TracedNode:
        """The node with this id (KeyError names the close ids)."""
        try:
            return self.nodes[module_id]
        except KeyError:
            stem = module_id.split("/")[0]
            close = [k for k in self.nodes if k.startswith(stem)][:8]
            raise KeyError(f"no node {module_id!r}; nodes of that stage include {close}") from None

    def walk(self, module_id: str = "root") -> Iterator[TracedNode]:
        """Depth-first, parents first, children in their stored order."""
        stack = [module_id]
        while stack:
            node = self.nodes[stack.pop()]
            yield node
            stack.extend(reversed(node.children))

    def category_flops(self, module_id: str = "root") -> dict[str, int]:
        """Total (executed matmul + vector) FLOPs per category of a node."""
        return {cat: cost.total_flops for cat, cost in self.node(module_id).by_category.items()}

    def other_flops_share(self, module_id: str = "root") -> float:
        """Share of a node's FLOPs in the ``other`` category (0.0 when the node has no FLOPs)."""
        flops = self.category_flops(module_id)
        total = sum(flops.values())
        return flops.get("other", 0) / total if total else 0.0
