"""``llm-perf-opt tree --flat --format json``: one JSON line per module of the built-in model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli


def _records(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["tree", "--flat", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


@pytest.fixture(scope="module")
def base_records() -> list[dict[str, Any]]:
    return _records()


def test_one_record_per_module_root_first(base_records: list[dict[str, Any]]) -> None:
    assert len(base_records) == 4083  # every named_modules() path of the upstream tree
    assert base_records[0] == {
        "path": "",
        "class_name": "DeepseekOCRForCausalLM",
        "own_params": 0,
        "params": 3_336_106_240,
    }
    assert [list(r) for r in base_records[:2]] == [["path", "class_name", "own_params", "params"]] * 2
    assert len({r["path"] for r in base_records}) == len(base_records)


def test_records_match_the_facts_sheet(base_records: list[dict[str, Any]]) -> None:
    by_path = {r["path"]: r for r in base_records}
    assert by_path["model"]["own_params"] == 2 * 1280  # image_newline + view_seperator
    assert by_path["model"]["params"] == 3_170_627_840
    assert by_path["model.sam_model"]["own_params"] == 64 * 64 * 768  # pos_embed
    assert by_path["model.sam_model"]["params"] == 95_569_152
    assert by_path["model.vision_model"]["params"] == 303_177_728
    assert by_path["model.layers.7.mlp.experts.63.down_proj"] == {
        "path": "model.layers.7.mlp.experts.63.down_proj",
        "class_name": "Linear",
        "own_params": 896 * 1280,
        "params": 896 * 1280,
    }
    assert by_path["model.layers.0.self_attn.rotary_emb"]["class_name"] == "LlamaRotaryEmbedding"
    assert by_path["model.sam_model.blocks.2.attn"]["own_params"] == 2 * 127 * 64  # rel_pos_h, rel_pos_w
    assert sum(r["own_params"] for r in base_records) == 3_336_106_240


def test_output_is_deterministic() -> None:
    first = CliRunner().invoke(cli, ["tree", "--flat", "--model", "deepseek-ocr-v1-tiny"])
    second = CliRunner().invoke(cli, ["tree", "--flat", "--model", "deepseek-ocr-v1-tiny"])
    assert first.exit_code == 0 and first.output == second.output
    assert json.loads(first.output.splitlines()[0])["class_name"] == "DeepseekOCRForCausalLM"


def test_unknown_model_is_one_line_listing_the_known_ones() -> None:
    result = CliRunner().invoke(cli, ["tree", "--flat", "--model", "deepseek-ocr-v9"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown model source 'deepseek-ocr-v9'; expected one of: ")
    assert "deepseek-ocr-v1-base, deepseek-ocr-v1-tiny" in lines[0]


def test_flat_text_is_the_json_records_as_aligned_lines() -> None:
    args = ["tree", "--flat", "--model", "deepseek-ocr-v1-tiny"]
    records = [json.loads(line) for line in CliRunner().invoke(cli, args).output.splitlines()]
    text = CliRunner().invoke(cli, [*args, "--format", "text"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].split() == ["path", "class", "params", "own", "params"] and len(lines) == len(records) + 1
    root = lines[1].split()
    assert root == ["<root>", records[0]["class_name"], f"{records[0]['params']:,}", f"{records[0]['own_params']:,}"]
    column = lines[0].index("class")  # every class name starts under the header's
    assert all(line[column:].startswith(r["class_name"]) for line, r in zip(lines[1:], records, strict=True))
