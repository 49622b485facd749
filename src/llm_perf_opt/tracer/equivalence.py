"""Compare two traces node by node: same ids, classes, weights and counters (torch-free).

Used to check that tracing real upstream code and tracing the built-in model give the same tree (issue 7 item 5).
Classes are compared by class name (``module.Class`` differs by construction: upstream's files vs this package).
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

from llm_perf_opt.tracer.result import TracedNode, TraceResult

__all__ = ["NodeDifference", "compare_traces"]


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
