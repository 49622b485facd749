"""diff: structural and numeric differences between two reports or two trees, with a tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from report_fixture import small_result

from llm_perf_opt.contracts import to_json
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import diff_snapshots, load_snapshot, snapshot_from_mapping
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
