"""Analytic vs traced, node by node: the ``validation.json`` payload and its pass/fail summary (torch-free).

Both sides are the project's one cost tree (:class:`~llm_perf_opt.core.tree.CostTree`): the trace's
(``TraceResult.tree``) and the analytic model's, compared node by node with the same reader.

Rule (issue 5): on every node present on both sides, ``matmul_flops`` must be equal exactly; every other validated
counter (``llm_perf_opt.analytic.divergences.VALIDATED_FIELDS`` plus ``calls``, ``weight_bytes``,
``kv_cache_bytes``) must agree within :data:`TOLERANCE` relative error, or be covered by a row of the divergence
table whose ratio range accepts it.  A node on one side only fails.  ``peak_activation_bytes`` is reported on
both sides with no ``rel_error`` entry: below the stages it is an estimate (divergence ``peak-activation-estimate``,
informational); on the stage and root nodes it must equal the trace (``peak-activation-stages``), and a node outside
that range is listed in the row's finding and counted in the summary (``divergence_nodes_outside_range``).  A node
is checked against the first row that covers it (:func:`~llm_perf_opt.analytic.divergences.divergence_for`).

Relative error is ``(analytic - traced) / traced``; when the trace counts 0 it is 0.0 if the analytic side does
too and 1.0 otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_perf_opt.analytic.divergences import DIVERGENCES, VALIDATED_FIELDS, Divergence, divergence_for
from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import STAGES, CostNode, CostTree, stage_of

__all__ = [
    "COMPARED",
    "TOLERANCE",
    "node_metrics",
    "rel_error",
    "validation_payload",
    "validation_summary",
]

TOLERANCE = 0.02
"""Largest accepted relative error for counters other than ``matmul_flops`` (which must be exact)."""
_NODE_METRICS = ("calls", "weight_bytes", "kv_cache_bytes")
COMPARED: tuple[str, ...] = (*VALIDATED_FIELDS, *_NODE_METRICS)
"""Quantities with a ``rel_error`` entry per node."""
_INFO = ("peak_activation_bytes",)


def rel_error(*, analytic: int, traced: int) -> float:
    """``(analytic - traced) / traced``; 0.0 when both are 0, 1.0 when only the trace is 0."""
    if traced == 0:
        return 0.0 if analytic == 0 else 1.0
    return (analytic - traced) / traced


def node_metrics(cost: Cost, *, calls: int, weight_bytes: int, kv_cache_bytes: int, peak: int) -> dict[str, int]:
    """One side of a node's comparison: every Cost field plus the node metrics (and the peak, for information)."""
    out = cost.as_dict()
    out.update(calls=calls, weight_bytes=weight_bytes, kv_cache_bytes=kv_cache_bytes, peak_activation_bytes=peak)
    return out


def _metrics(node: CostNode) -> dict[str, int]:
    return node_metrics(
        node.cost,
        calls=node.calls,
        weight_bytes=node.weight_bytes,
        kv_cache_bytes=node.kv_cache_bytes,
        peak=node.peak_activation_bytes,
    )


def validation_payload(traced: CostTree, analytic: CostTree) -> dict[str, Any]:
    """``{"stages": {...}, "nodes": [...], "divergences": [...]}`` (see the module docstring).

    ``nodes`` lists every node of either side in trace order (then analytic-only nodes); a node missing on one
    side has ``{}`` there and no ``rel_error``.  ``divergences`` has one entry per row of the divergence table:
    its reason, expected ratio and range, and the ratio found (on ``root`` when the row covers it, else on the
    first covered node).
    """
    nodes: list[dict[str, Any]] = []
    ids = list(traced) + [nid for nid in analytic if nid not in traced]
    for nid in ids:
        t_node = traced.get(nid)
        a_node = analytic.get(nid)
        mine = _metrics(t_node) if t_node is not None else {}
        ana = _metrics(a_node) if a_node is not None else {}
        rel = {k: rel_error(analytic=ana[k], traced=mine[k]) for k in COMPARED} if mine and ana else {}
        stage = t_node.stage if t_node is not None else stage_of(nid)
        nodes.append({"module_id": nid, "stage": stage, "traced": mine, "analytic": ana, "rel_error": rel})
    stages = {
        nid: {"traced": _metrics(traced[nid]), "analytic": _metrics(analytic[nid])}
        for nid in STAGES
        if nid in traced and nid in analytic
    }
    return {"stages": stages, "nodes": nodes, "divergences": [_row_finding(row, nodes) for row in DIVERGENCES]}


def _row_finding(row: Divergence, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    covered = [  # the first row that covers a node is its row (divergence_for), as in the pass/fail check
        n for n in nodes if n["traced"] and n["analytic"] and divergence_for(n["module_id"], row.metric) == row
    ]
    probe = next((n for n in covered if n["module_id"] == "root"), covered[0] if covered else None)
    ratio = None
    if probe is not None and probe["traced"].get(row.metric):
        ratio = probe["analytic"][row.metric] / probe["traced"][row.metric]
    outside = [
        n["module_id"]
        for n in covered
        if n["traced"].get(row.metric) and not row.accepts(n["analytic"][row.metric] / n["traced"][row.metric])
    ]
    return {
        **row.as_dict(),
        "module_id": probe["module_id"] if probe is not None else row.pattern,
        "metric": row.metric,
        "ratio": ratio,
        "nodes_covered": len(covered),
        "nodes_outside_range": outside,
    }


def _node_failures(node: Mapping[str, Any]) -> list[str]:
    """The node's failed checks as ``metric: reason`` strings (empty when it passes)."""
    if not node["traced"] or not node["analytic"]:
        return ["missing: " + ("analytic" if node["traced"] else "traced") + " side has no such node"]
    failures = []
    traced, ana, rel = node["traced"], node["analytic"], node["rel_error"]
    if traced["matmul_flops"] != ana["matmul_flops"]:
        failures.append(f"matmul_flops: {ana['matmul_flops']} != {traced['matmul_flops']} (must be exact)")
    for metric in COMPARED[1:]:
        err = rel[metric]
        if abs(err) <= TOLERANCE:
            continue
        row = divergence_for(node["module_id"], metric)
        if row is not None and traced[metric] and row.accepts(ana[metric] / traced[metric]):
            continue
        failures.append(f"{metric}: rel error {err:+.4f}")
    return failures


def validation_summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Pass/fail counts, the worst node and every failure of a :func:`validation_payload`."""
    nodes = payload["nodes"]
    failures = {n["module_id"]: f for n in nodes if (f := _node_failures(n))}
    compared = [n for n in nodes if n["traced"] and n["analytic"]]
    exact = sum(1 for n in compared if n["traced"]["matmul_flops"] == n["analytic"]["matmul_flops"])
    worst_id, worst_metric, worst_err = "", "", 0.0
    for n in compared:
        for metric, err in n["rel_error"].items():
            if abs(err) > abs(worst_err):
                worst_id, worst_metric, worst_err = n["module_id"], metric, err
    outside = sum(len(d.get("nodes_outside_range", [])) for d in payload.get("divergences", []))
    return {
        "status": "pass" if not failures else "fail",
        "nodes_compared": len(compared),
        "nodes_passed": len(nodes) - len(failures),
        "nodes_failed": len(failures),
        "matmul_flops_exact_nodes": exact,
        "tolerance": TOLERANCE,
        "worst_node": worst_id or None,
        "worst_metric": worst_metric or None,
        "worst_rel_error": worst_err,
        "divergence_rows": len(payload.get("divergences", [])),
        "divergence_nodes_outside_range": outside,
        "failures": failures,
    }
