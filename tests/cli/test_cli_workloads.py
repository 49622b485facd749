"""``llm-perf-opt workloads``: text table and deterministic JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.workloads import MODES, PRESETS


def test_text_lists_presets_and_modes() -> None:
    result = CliRunner().invoke(cli, ["workloads"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    standard = next(line for line in lines if line.startswith("dsocr-standard-v1 "))
    assert standard.split() == ["dsocr-standard-v1", "gundam", "1024x1024", "2x2", "4", "693", "9", "703", "512", "1",
                                "mixed_layout"]  # fmt: skip
    assert all(any(line.startswith(f"{pid} ") for line in lines) for pid in PRESETS)
    gundam = next(line for line in lines if line.startswith("gundam "))
    assert "273 + 100*i*j + 10*j" in gundam and gundam.split()[-1] == "283..1273"  # 1 + (273 + 900 + 90) + 9
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert tiny.split() == ["tiny", "512", "px", "none", "73", "83"]


def test_json_is_deterministic_and_complete() -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["workloads", "--format", "json"])
    second = runner.invoke(cli, ["workloads", "--format", "json"])
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    data = json.loads(first.output)
    assert [row["profile_id"] for row in data["presets"]] == list(PRESETS)
    assert [row["mode"] for row in data["modes"]] == list(MODES)
    standard = data["presets"][0]
    assert standard["profile_id"] == "dsocr-standard-v1"
    assert (standard["grid"], standard["image_tokens"], standard["seq_len"]) == ([2, 2], 693, 703)
    assert (standard["decode_steps"], standard["final_kv_len"]) == (511, 703 + 512 - 1)
    gundam_m = data["modes"][-1]
    assert (gundam_m["min_image_tokens"], gundam_m["max_image_tokens"]) == (421, 421 + 256 * 9 + 16 * 9)


def test_bad_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["workloads", "--format", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json'" in result.output
