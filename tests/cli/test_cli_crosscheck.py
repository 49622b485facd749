"""``llm-perf-opt crosscheck``: our counts against FlopCounterMode (exactly) and fvcore (every difference explained)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from llm_perf_opt.analysis.crosscheck import crosscheck, expand_group
from llm_perf_opt.cli import cli


def test_group_ids_expand_to_module_paths() -> None:
    assert expand_group("model.layers.{1..3}.mlp") == ["model.layers.1.mlp", "model.layers.2.mlp", "model.layers.3.mlp"]
    assert expand_group("model.sam_model.blocks.{0,2}") == ["model.sam_model.blocks.0", "model.sam_model.blocks.2"]


def test_flopcounter_equals_ours_on_every_stage_and_module() -> None:
    rows = crosscheck(counters=["flopcounter"])
    assert {r.name for r in rows if r.scope == "stage"} == {"vision", "projector", "prefill", "decode"}
    assert "prefill/model.layers.{1..2}" in {r.name for r in rows}
    assert all(r.theirs == r.ours and r.explained for r in rows), [r for r in rows if r.theirs != r.ours]
    assert sum(r.ours for r in rows if r.scope == "stage") > 5e8


@pytest.mark.skipif(importlib.util.find_spec("fvcore") is None, reason="fvcore not installed (the [fvcore] extra)")
def test_fvcore_differences_are_all_explained() -> None:
    rows = {r.name: r for r in crosscheck(counters=["fvcore"])}
    assert all(r.explained for r in rows.values())
    assert rows["prefill/lm_head"].theirs * 2 == rows["prefill/lm_head"].ours  # the MAC convention alone
    assert "scaled_dot_product_attention" in rows["vision/model.sam_model"].reason


def test_cli_prints_the_table_and_exits_0_when_all_is_explained() -> None:
    result = CliRunner().invoke(cli, ["crosscheck", "--with", "flopcounter", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data and all(row["ratio"] in (None, 1.0) for row in data)
    bad = CliRunner().invoke(cli, ["crosscheck", "--with", "ptflops"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: unknown counter(s) ptflops")
