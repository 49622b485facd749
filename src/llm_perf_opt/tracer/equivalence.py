"""Compare two traces node by node: same ids, classes, weights and counters (torch-free).

Used to check that tracing real upstream code and tracing the built-in model give the same tree (issue 7 item 5).
Classes are compared by class name (``module.Class`` differs by construction: upstream's files vs this package).
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

from llm_perf_opt.tracer.result import TracedNode, TraceResult

__all__ = ["KNOWN_PEAK_DIFFERENCES", "NodeDifference", "compare_traces"]


@frozen(kw_only=True)
class NodeDifference:
    """One way a node differs between a reference and a candidate trace."""

    module_id: str
    what: str
    reference: str
    candidate: str

    def __str__(self) -> str:
        return f"{self.module_id}: {self.what} {self.reference} != {self.candidate}"


def _class_name(node: TracedNode) -> str:
    return node.qualified_class_name.rsplit(".", 1)[-1]


def _node_differences(ref: TracedNode, cand: TracedNode) -> Iterable[NodeDifference]:
    checks = (
        ("class", _class_name(ref), _class_name(cand)),
        ("repetition", f"{ref.repetition}x{ref.repetition_count}", f"{cand.repetition}x{cand.repetition_count}"),
        ("weight_bytes", ref.weight_bytes, cand.weight_bytes),
        ("calls", ref.calls, cand.calls),
        ("kv_cache_bytes", ref.kv_cache_bytes, cand.kv_cache_bytes),
    )
    for what, a, b in checks:
        if a != b:
            yield NodeDifference(module_id=ref.module_id, what=what, reference=str(a), candidate=str(b))
    ref_cost, cand_cost = ref.cost.as_dict(), cand.cost.as_dict()
    for counter in sorted(ref_cost):
        if ref_cost[counter] != cand_cost.get(counter):
            yield NodeDifference(
                module_id=ref.module_id,
                what=counter,
                reference=str(ref_cost[counter]),
                candidate=str(cand_cost.get(counter)),
            )


def compare_traces(reference: TraceResult, candidate: TraceResult) -> list[NodeDifference]:
    """Every difference: nodes only in one trace, then per-node class, repetition, weights, calls and counters."""
    out: list[NodeDifference] = []
    for module_id in sorted(set(reference.nodes) - set(candidate.nodes)):
        out.append(NodeDifference(module_id=module_id, what="node", reference="present", candidate="missing"))
    for module_id in sorted(set(candidate.nodes) - set(reference.nodes)):
        out.append(NodeDifference(module_id=module_id, what="node", reference="missing", candidate="present"))
    for module_id in sorted(set(reference.nodes) & set(candidate.nodes)):
        out.extend(_node_differences(reference.nodes[module_id], candidate.nodes[module_id]))
    return out


KNOWN_PEAK_DIFFERENCES: dict[str, str] = {
    "<input>": "upstream's API takes an all-zero [B, 3, base, base] crops tensor when a page has no crops (the "
    "built-in forward takes None); it is an input, live for the whole prefill pass",
    "aten._to_copy.default": "upstream's eager attention keeps the attention probabilities (the fp32 softmax cast "
    "back to the model dtype, B x H x q x L) referenced until after o_proj; the built-in drops them before o_proj",
    "aten.cat.default": "upstream's DeepseekOCRModel.forward keeps the concatenated image features in a local "
    "variable while the language layers run",
    "aten.convolution.default": "the same frame keeps SAM's last convolution output (net_3) alive through the "
    "language layers",
    "aten.add.Tensor": "the same frame keeps CLIP's embeddings (patch + position) alive through CLIP and the "
    "language layers",
    "aten.addmm.default": "upstream's CLIP keeps one more projection output alive inside its transformer layers",
    "aten.native_layer_norm.default": "with local crops the two copies hold different CLIP tensors at CLIP's "
    "pre-layernorm: the built-in still references a layer-norm output (and a class-token concatenation, "
    "aten.cat) that upstream has released, while upstream holds SAM/CLIP outputs of the other view (negative "
    "for upstream)",
    "aten.sum.dim_IntList": "the built-in MoE keeps its per-expert token counts (n_experts x int64) through the "
    "expert loop; upstream's dispatch runs through the moe-shape-only-dispatch adapter, which does not (-512 B)",
}
"""Producing op -> why upstream's live set at a node's peak differs by that op's tensors from the built-in's.

Measured with :func:`llm_perf_opt.measure.peak_explain.node_live_sets` on the assembled v1 snapshot (transformers
4.46.3, eager): Base 1024 without crops, 103 of 137 nodes differ in peak; Gundam 1920x1080 (4x2 crops), 64 of 137;
every difference is made of these ops' tensors, and the op sequences (every Cost counter) are equal on all nodes."""
