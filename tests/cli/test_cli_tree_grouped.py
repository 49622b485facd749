"""``llm-perf-opt tree`` without --flat: the grouped tree a trace produces, as text or JSON records."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli

TINY = ["tree", "--model", "deepseek-ocr-v1-tiny", "--max-new-tokens", "4"]


def test_text_view_shows_stages_groups_and_params() -> None:
    result = CliRunner().invoke(cli, [*TINY, "--depth", "4"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("[root]  DeepseekOCRForCausalLM  params ")
    assert [line.strip().split()[0] for line in lines if line.strip().startswith("[")] == [
        "[root]",
        "[vision]",
        "[projector]",
        "[prefill]",
        "[decode]",
    ]
    layers = [line.strip() for line in lines if "DeepseekV2DecoderLayer" in line]
    assert layers[0].startswith("layers.0  DeepseekV2DecoderLayer  params")  # dense layer 0 stays alone
    assert layers[1].startswith("layers.{1..2}  DeepseekV2DecoderLayer  for x2  params")  # MoE layers grouped
    assert result.stderr == ""  # progress only on a terminal, as every command's


def test_progress_on_stderr_when_asked_and_quiet_silences_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_perf_opt.cli import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    monkeypatch.setattr(progress, "SLOW_STEP_S", -1.0)  # every step leaves its line
    loud = CliRunner().invoke(cli, [*TINY, "--depth", "1"])
    quiet = CliRunner().invoke(cli, [*TINY, "--depth", "1", "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "tracing deepseek-ocr-v1-tiny" in loud.stderr and quiet.stderr == ""
    assert quiet.stdout == loud.stdout


def test_json_records_and_stage_filter() -> None:
    result = CliRunner().invoke(cli, [*TINY, "--format", "json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert records[0]["module_id"] == "root" and records[0]["params"] > 0
    assert {r["stage"] for r in records} == {"other", "vision", "projector", "prefill", "decode"}
    experts = [r for r in records if r["module_id"].endswith("experts.{0..7}")] or [
        r for r in records if r["repetition"] == "parfor"
    ]
    assert experts and all(r["repetition"] == "parfor" for r in experts)


def test_bad_flags_are_one_line_errors() -> None:
    bad_page = CliRunner().invoke(cli, [*TINY, "--image", "big"])
    assert bad_page.exit_code == 1 and bad_page.stderr.startswith("error: --image must be WIDTHxHEIGHT")
