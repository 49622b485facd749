"""diff: structural and numeric differences between two reports or two trees, with a tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from report_fixture import small_result

from llm_perf_opt.contracts import to_json
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import NodeRecord, Snapshot, diff_snapshots, load_snapshot, snapshot_from_mapping
from llm_perf_opt.report.diff_render import diff_to_dict, render_diff_text


@pytest.fixture(scope="module")
def model8() -> dict[str, Any]:
    return json.loads(to_json(small_result(max_new_tokens=8).model))


@pytest.fixture(scope="module")
def model16() -> dict[str, Any]:
    return json.loads(to_json(small_result(max_new_tokens=16).model))


def _snap(data: dict[str, Any], label: str = "x") -> Any:
    return snapshot_from_mapping(data, label=label)


def test_a_report_equals_itself(model8: dict[str, Any]) -> None:
    diff = diff_snapshots(_snap(model8, "a"), _snap(model8, "b"))
    assert diff.equal
    assert render_diff_text(diff).endswith("EQUAL within tolerance 1e-06\n")


def test_two_workloads_differ_in_decode_only(model8: dict[str, Any], model16: dict[str, Any]) -> None:
    diff = diff_snapshots(_snap(model8), _snap(model16))
    assert not diff.equal and not diff.added and not diff.removed
    header = {c.field: (c.a, c.b) for c in diff.changes if c.module_id == "(report)"}
    assert header["workload.max_new_tokens"] == (8, 16)
    nodes = {d.module_id for d in diff.deltas}
    assert "decode/lm_head" in nodes and "decode/model.layers.{1..11}" in nodes
    assert not any(n.startswith(("vision", "prefill")) for n in nodes)
    lm = next(d for d in diff.deltas if d.module_id == "decode/lm_head" and d.metric == "flops")
    assert lm.b / lm.a == pytest.approx(15 / 7, rel=1e-8)  # 2*d*V per decode step: 15 steps vs 7
    text = render_diff_text(diff)
    assert "workload.max_new_tokens: 8 -> 16" in text and "decode/lm_head: " in text
    assert text.splitlines()[-1].startswith("DIFFERENT: 0 added, 0 removed, 0 changed,")


def test_tolerance_is_relative(model8: dict[str, Any]) -> None:
    bumped = json.loads(json.dumps(model8))
    row = next(m for m in bumped["module_metrics"] if m["module_id"] == "prefill/lm_head")
    row["total_flops_tflops"] *= 1.001
    assert not diff_snapshots(_snap(model8), _snap(bumped), tolerance=1e-6).equal
    assert diff_snapshots(_snap(model8), _snap(bumped), tolerance=0.01).equal
    with pytest.raises(UserError, match="tolerance must be >= 0"):
        diff_snapshots(_snap(model8), _snap(bumped), tolerance=-1.0)


def test_structure_changes_always_count(model8: dict[str, Any]) -> None:
    changed = json.loads(json.dumps(model8))
    mod = next(m for m in changed["modules"] if m["module_id"] == "prefill/lm_head")
    mod["constructor_params"]["out_features"] = 129281
    mod["qualified_class_name"] = "torch.nn.Linear2"
    dropped = next(m for m in changed["modules"] if m["module_id"] == "decode/lm_head")
    changed["modules"].remove(dropped)
    extra = dict(dropped, module_id="decode/lm_head2")
    changed["modules"].append(extra)
    diff = diff_snapshots(_snap(model8), _snap(changed), tolerance=1.0)
    assert diff.removed == ("decode/lm_head",) and diff.added == ("decode/lm_head2",)
    fields = {(c.module_id, c.field) for c in diff.changes}
    assert ("prefill/lm_head", "constructor_params.out_features") in fields
    assert ("prefill/lm_head", "class_name") in fields
    text = render_diff_text(diff)
    assert "  ~ prefill/lm_head: class_name 'torch.nn.modules.linear.Linear' -> 'torch.nn.Linear2'" in text
    assert diff_to_dict(diff)["removed"] == ["decode/lm_head"]


def test_loads_folders_files_and_flat_trees(tmp_path: Path, model8: dict[str, Any]) -> None:
    folder = tmp_path / "rep"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps(model8))
    assert load_snapshot(folder).nodes.keys() == load_snapshot(folder / "model.json").nodes.keys()
    tree_a = tmp_path / "a.jsonl"
    tree_b = tmp_path / "b.jsonl"
    rec = {"path": "", "class_name": "M", "own_params": 0, "params": 10}
    tree_a.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "path": "x", "params": 10}) + "\n")
    tree_b.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "path": "x", "params": 12}) + "\n")
    diff = diff_snapshots(load_snapshot(tree_a), load_snapshot(tree_b))
    assert [(d.module_id, d.metric, d.a, d.b) for d in diff.deltas] == [("x", "params", 10.0, 12.0)]
    with pytest.raises(UserError, match="cannot compare a report"):
        diff_snapshots(load_snapshot(folder), load_snapshot(tree_a))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON or JSON lines"),
        ('{"a": 1}', "is neither a report"),
        ('{"modules": [{"x": 1}], "module_metrics": []}', "malformed model.json"),
    ],
)
def test_bad_inputs_are_one_line_user_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "model.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_snapshot(path)
    assert "\n" not in str(info.value)


def test_folder_without_model_json(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"folder without model\.json"):
        load_snapshot(tmp_path)


def _report(label: str, totals: dict[str, float], nodes: dict[str, dict[str, float]]) -> Snapshot:
    records = {nid: NodeRecord(module_id=nid, class_name="Linear", metrics=m) for nid, m in nodes.items()}
    return Snapshot(kind="report", label=label, totals=totals, nodes=records)


def test_the_verdict_names_headline_changes_when_no_node_moves() -> None:
    """hf-eager vs --runtime vllm: the per-node breakdown is the eager one in both; only the headline moves."""
    nodes = {"decode/lm_head": {"time_s": 1e-3}}
    a = _report("eager", {"ttft_s": 0.07323, "end_to_end_s": 6.183}, nodes)
    b = _report("vllm", {"ttft_s": 0.01969, "end_to_end_s": 0.5441}, nodes)
    verdict = render_diff_text(diff_snapshots(a, b)).splitlines()[-1]
    assert verdict == (
        "DIFFERENT: 0 added, 0 removed, 0 changed, 0 with metric differences; headline: "
        "TTFT 73.23 ms -> 19.69 ms (-73.1%), end to end 6,183 ms -> 544.1 ms (-91.2%)"
    )
    same = render_diff_text(diff_snapshots(a, _report("eager", dict(a.totals), nodes))).splitlines()[-1]
    assert same == "EQUAL within tolerance 1e-06"
    # across a unit boundary both sides take one unit, in the headline table and in the verdict
    c = _report("long", {"end_to_end_s": 10.32}, {"n": {"time_s": 89.8e-6}})
    d = _report("short", {"end_to_end_s": 6.199}, {"n": {"time_s": 108.96e-6}})
    text = render_diff_text(diff_snapshots(c, d))
    assert "end to end 10,320 ms -> 6,199 ms (-39.9%)" in text.splitlines()[-1]
    assert "n: time 89.8 us -> 109.0 us (+21.3%)" in text
    assert "10,320 ms  6,199 ms" in text


def test_nodes_rank_by_the_time_they_moved_not_by_rounding_of_relative_changes() -> None:
    """fp8 vs bf16: every node's bytes halve (-50%, tied up to float noise); the node whose time moved most leads."""
    a = _report(
        "bf16",
        {},
        {
            "prefill/model.embed_tokens": {"bytes": 1000.0000001, "time_s": 11.3e-6},
            "decode/model.layers.{1..11}.mlp": {"bytes": 1000.0, "time_s": 2.0},
        },
    )
    b = _report(
        "fp8",
        {},
        {
            "prefill/model.embed_tokens": {"bytes": 500.0, "time_s": 10.7e-6},
            "decode/model.layers.{1..11}.mlp": {"bytes": 500.0, "time_s": 1.5},
        },
    )
    lines = render_diff_text(diff_snapshots(a, b)).splitlines()
    start = lines.index("metric differences beyond the tolerance (2 nodes, largest time change first):")
    assert lines[start + 1].startswith("  decode/model.layers.{1..11}.mlp: ")
    assert lines[start + 2].startswith("  prefill/model.embed_tokens: ")


def _with_runtime(snapshot: Snapshot, runtime: str) -> Snapshot:
    return Snapshot(
        kind=snapshot.kind,
        label=snapshot.label,
        totals=snapshot.totals,
        nodes=snapshot.nodes,
        facts={"runtime": runtime},
    )


def test_node_times_of_a_kernel_model_runtime_are_said_to_be_the_eager_breakdown() -> None:
    """sglang on B200 vs hf-eager on H100: the headline says 593.8 ms -> 6,183 ms while the root's node time reads
    6,043 ms -> 6,183 ms (sglang's nodes carry the eager op-by-op breakdown); the node section says so."""
    a = _with_runtime(_report("b200", {"end_to_end_s": 0.5938}, {"root": {"time_s": 6.043}}), "sglang")
    b = _with_runtime(_report("h100", {"end_to_end_s": 6.183}, {"root": {"time_s": 6.183}}), "hf-eager")
    lines = render_diff_text(diff_snapshots(a, b)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("metric differences beyond the tolerance"))
    assert lines[start + 1] == (
        "  (node times are the eager op-by-op breakdown (hf-eager) on both sides, not the headline's runtime: "
        "A ran sglang)"
    )
    # both sides' runtimes time their nodes themselves (hf-flash is op by op too): no note
    c = _with_runtime(a, "hf-flash")
    assert not any("op-by-op" in line for line in render_diff_text(diff_snapshots(c, b)).splitlines())
