"""``validation.json`` payload and summary, torch-free: a real analytic tree against an edited copy of itself
(two instances of the one cost tree type)."""

from __future__ import annotations

import json

from attrs import evolve

from llm_perf_opt.analysis.validation import COMPARED, rel_error, validation_payload, validation_summary
from llm_perf_opt.analytic import AnalyticTree, analytic_costs
from llm_perf_opt.analytic.divergences import DIVERGENCES, divergence_for
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core.tree import CostNode, CostTree
from llm_perf_opt.workloads import Workload

CONFIG = DeepseekOCRConfig.tiny()
WORKLOAD = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=3, config=CONFIG)


def _mirror(tree: AnalyticTree) -> dict[str, CostNode]:
    """A 'trace' that agrees with the analytic tree everywhere (peaks doubled: they are only informational)."""
    return {nid: evolve(node, peak_activation_bytes=2 * node.peak_activation_bytes + 1) for nid, node in tree.items()}


def test_payload_shape() -> None:
    tree = analytic_costs(CONFIG, WORKLOAD)
    payload = validation_payload(CostTree(_mirror(tree)), tree)
    assert set(payload) == {"stages", "nodes", "divergences"}
    assert set(payload["stages"]) == {"vision", "projector", "prefill", "decode"}
    for side in payload["stages"]["prefill"].values():
        assert {"matmul_flops", "vector_flops", "bytes_read", "bytes_written"} <= set(side)
    node = payload["nodes"][0]
    assert set(node) == {"module_id", "stage", "traced", "analytic", "rel_error"}
    assert set(node["rel_error"]) == set(COMPARED)
    assert "peak_activation_bytes" in node["traced"] and "peak_activation_bytes" not in node["rel_error"]
    assert len(payload["divergences"]) == len(DIVERGENCES)
    json.dumps(payload)  # plain JSON types only


def test_identical_sides_pass() -> None:
    tree = analytic_costs(CONFIG, WORKLOAD)
    summary = validation_summary(validation_payload(CostTree(_mirror(tree)), tree))
    assert summary["status"] == "pass"
    assert summary["nodes_failed"] == 0
    assert summary["nodes_compared"] == summary["matmul_flops_exact_nodes"] == len(tree)
    assert summary["worst_rel_error"] == 0.0


def test_matmul_must_be_exact_and_others_within_two_percent() -> None:
    tree = analytic_costs(CONFIG, WORKLOAD)
    nodes = _mirror(tree)
    lin = "prefill/lm_head"
    c = nodes[lin].cost
    nodes[lin] = evolve(nodes[lin], cost=evolve(c, matmul_flops=c.matmul_flops + 1))
    mm_fail = validation_summary(validation_payload(CostTree(nodes), tree))
    assert mm_fail["status"] == "fail" and set(mm_fail["failures"]) == {lin}
    nodes = _mirror(tree)
    nodes[lin] = evolve(nodes[lin], cost=evolve(c, bytes_read=int(c.bytes_read * 1.015)))  # 1.5 %: fine
    assert validation_summary(validation_payload(CostTree(nodes), tree))["status"] == "pass"
    nodes[lin] = evolve(nodes[lin], cost=evolve(c, bytes_read=int(c.bytes_read * 1.05)))  # 5 %: not
    summary = validation_summary(validation_payload(CostTree(nodes), tree))
    assert summary["status"] == "fail"
    assert summary["worst_node"] == lin and summary["worst_metric"] == "bytes_read"
    assert abs(summary["worst_rel_error"] + 0.05 / 1.05) < 1e-4  # analytic is 1/1.05 of traced


def test_missing_nodes_fail() -> None:
    tree = analytic_costs(CONFIG, WORKLOAD)
    nodes = _mirror(tree)
    nodes["prefill/extra"] = nodes["prefill/lm_head"]
    del nodes["decode/lm_head"]
    payload = validation_payload(CostTree(nodes), tree)
    summary = validation_summary(payload)
    assert set(summary["failures"]) == {"prefill/extra", "decode/lm_head"}
    extra = next(n for n in payload["nodes"] if n["module_id"] == "prefill/extra")
    assert extra["analytic"] == {} and extra["rel_error"] == {}


def test_rel_error() -> None:
    assert rel_error(analytic=102, traced=100) == 0.02
    assert rel_error(analytic=0, traced=0) == 0.0
    assert rel_error(analytic=5, traced=0) == 1.0


def test_leaf_peaks_are_informational_and_stage_peaks_must_equal_the_trace() -> None:
    leaf = divergence_for("prefill/model.layers.0", "peak_activation_bytes")
    assert leaf is not None and leaf.id == "peak-activation-estimate" and leaf.accepts(1e-6) and leaf.accepts(50.0)
    assert divergence_for("prefill/model.layers.0", "bytes_read") is None
    for nid in ("root", "vision", "projector", "prefill", "decode"):
        row = divergence_for(nid, "peak_activation_bytes")
        assert row is not None and row.id == "peak-activation-stages" and row.ratio_range == (1.0, 1.0)
        assert row.accepts(1.0) and not row.accepts(0.489542) and not row.accepts(1.0001)
    tree = analytic_costs(CONFIG, WORKLOAD)
    stages = ["root", "vision", "projector", "prefill", "decode"]
    findings = {f["id"]: f for f in validation_payload(CostTree(_mirror(tree)), tree)["divergences"]}
    on_stages = findings["peak-activation-stages"]
    assert on_stages["module_id"] == "root" and on_stages["metric"] == "peak_activation_bytes"
    assert 0.49 < on_stages["ratio"] < 0.51  # the fake trace doubles every peak (plus 1 B)
    assert on_stages["nodes_covered"] == 5 and on_stages["nodes_outside_range"] == stages
    leaves = findings["peak-activation-estimate"]
    assert leaves["nodes_covered"] == len(tree) - 5 and leaves["nodes_outside_range"] == []
    assert on_stages["reason"] and leaves["reason"]


def test_stage_peaks_equal_to_the_trace_are_inside_the_range() -> None:
    tree = analytic_costs(CONFIG, WORKLOAD)
    nodes = dict(tree.items())  # peaks equal on both sides
    payload = validation_payload(CostTree(nodes), tree)
    summary = validation_summary(payload)
    assert summary["status"] == "pass" and summary["divergence_nodes_outside_range"] == 0
    # one stage off by one byte is flagged: the summary counts it, the finding names it
    nodes["decode"] = evolve(nodes["decode"], peak_activation_bytes=nodes["decode"].peak_activation_bytes + 1)
    payload = validation_payload(CostTree(nodes), tree)
    found = {f["id"]: f["nodes_outside_range"] for f in payload["divergences"]}
    assert found == {"peak-activation-estimate": [], "peak-activation-stages": ["decode"]}
    assert validation_summary(payload)["divergence_nodes_outside_range"] == 1
