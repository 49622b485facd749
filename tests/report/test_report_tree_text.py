"""The grouped tree as text and as records (what ``tree`` prints without --flat)."""

from __future__ import annotations

import pytest
from report_fixture import small_result

from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import diff_snapshots, snapshot_from_mapping
from llm_perf_opt.report.tree_text import tree_records, tree_text


def test_text_shows_class_repetition_params_and_constructor_params() -> None:
    trace = small_result().trace
    lines = tree_text(trace).splitlines()
    assert lines[1] == "[root]  DeepseekOCRForCausalLM  params 3.34B"  # 6,672,212,480 B / 2 B per bf16 param
    block = next(line for line in lines if "blocks.{2,5,8,11}" in line)
    # 4 global blocks x 7,104,128 params (model-facts §2.1)
    assert block == "      blocks.{2,5,8,11}  Block  for x4  params 28.4M  (dim=768, num_heads=12, window_size=0)"
    experts = next(line for line in lines if "experts.{0..63}" in line)
    assert "  parfor x64  " in experts
    assert len(lines) == 1 + len(trace.nodes)


def test_stage_and_depth_filters() -> None:
    trace = small_result().trace
    lines = tree_text(trace, stage="decode", max_depth=0).splitlines()
    assert lines[1:] == ["[decode]  DeepseekOCRForCausalLM  params 2.93B"]  # 5,869,211,520 B / 2
    with pytest.raises(UserError, match="stages present: vision, projector, prefill, decode"):
        tree_text(trace, stage="bogus")


def test_records_are_diffable() -> None:
    a = tree_records(small_result(max_new_tokens=8).trace)
    b = tree_records(small_result(max_new_tokens=16).trace)
    assert a[0]["module_id"] == "root" and a[0]["params"] == 3_336_106_240
    diff = diff_snapshots(snapshot_from_mapping(a, label="a"), snapshot_from_mapping(b, label="b"))
    assert {d.module_id for d in diff.deltas} == {
        "decode/lm_head",
        "decode/model.layers.0",
        "decode/model.layers.{1..11}",
    }
    assert {d.metric for d in diff.deltas} == {"calls"}
