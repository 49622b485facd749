"""``llm-perf-opt diff A B``: exit 0 when equal, 1 when different (naming the nodes), one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.contracts import to_json


def _fixture_module() -> ModuleType:
    """tests/report/report_fixture.py (a hand-built AnalysisResult), loaded by path: test dirs are not packages."""
    if "report_fixture" in sys.modules:
        return sys.modules["report_fixture"]
    path = Path(__file__).resolve().parents[1] / "report" / "report_fixture.py"
    spec = importlib.util.spec_from_file_location("report_fixture", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["report_fixture"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    fixture = _fixture_module()
    root = tmp_path_factory.mktemp("reports")
    out = {}
    for name, n in (("n8", 8), ("n16", 16)):
        folder = root / name
        folder.mkdir()
        (folder / "model.json").write_text(to_json(fixture.small_result(max_new_tokens=n).model))
        out[name] = folder
    return out


def test_same_report_is_equal_exit_0(reports: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["diff", str(reports["n8"]), str(reports["n8"] / "model.json")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "EQUAL within tolerance 1e-06"


def test_two_workloads_differ_exit_1_naming_nodes(reports: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["diff", str(reports["n8"]), str(reports["n16"])])
    assert result.exit_code == 1
    out = result.stdout
    assert "workload.max_new_tokens: 8 -> 16" in out
    # 7 and 15 decode steps x 2*1280*129280 FLOPs (lm_head on one token per step)
    assert "  decode/lm_head: " in out and "FLOPs 2.32 GFLOP -> 4.96 GFLOP (+114%)" in out
    assert out.splitlines()[-1] == (
        "DIFFERENT: 0 added, 0 removed, 0 changed, 5 with metric differences; innermost: decode/model.layers.0, "
        "decode/model.layers.{1..11}, decode/lm_head"
    )


def test_json_format_and_a_loose_tolerance(reports: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["diff", str(reports["n8"]), str(reports["n16"]), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["equal"] is False and data["added"] == [] and data["removed"] == []
    assert {d["module_id"] for d in data["metric_deltas"]} >= {"decode", "decode/lm_head", "root"}


def test_bad_inputs_one_line_no_traceback(reports: dict[str, Path], tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["diff", str(tmp_path / "nope"), str(reports["n8"])])
    assert missing.exit_code == 2  # unreadable input: 2, never the 1 of "different"
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.output
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2")
    bad = CliRunner().invoke(cli, ["diff", str(junk), str(reports["n8"])])
    assert bad.exit_code == 2 and "is not JSON or JSON lines" in bad.stderr
    usage = CliRunner().invoke(cli, ["diff", str(reports["n8"])])
    assert usage.exit_code == 2
    negative = CliRunner().invoke(cli, ["diff", str(reports["n8"]), str(reports["n8"]), "--tolerance", "-1"])
    assert negative.exit_code == 2


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real report folders of the tiny model: H100 bf16 and A100 fp32."""
    root = tmp_path_factory.mktemp("analysed")
    tiny = ["--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4", "--quiet"]
    out = {}
    for name, extra in (("h100", []), ("a100", ["--device", "a100-80gb", "--dtype", "fp32"])):
        result = CliRunner().invoke(cli, ["analyze", *tiny, *extra, "--out", str(root / name)])
        assert result.exit_code == 0, result.output
        out[name] = root / name
    return out


def test_header_block_and_headline_deltas(analysed: dict[str, Path]) -> None:
    """Device and dtype changes are named in the header; TTFT/TPOT/memory/pages-per-day deltas follow (issue 17)."""
    result = CliRunner().invoke(cli, ["diff", str(analysed["h100"]), str(analysed["a100"])])
    assert result.exit_code == 1
    out = result.stdout
    header = out[out.index("what was compared:") : out.index("headline:")]
    for fact in ("model", "source revision", "workload", "attention", "runtime", "profile"):
        assert f"  {fact} " in header
    rows = {line.split()[0]: line for line in header.splitlines()[2:] if line.strip()}
    assert "h100-sxm" in rows["device"] and "a100-80gb" in rows["device"] and rows["device"].endswith("* differs")
    assert "fp32" in rows["dtype"] and rows["dtype"].endswith("* differs")
    assert not rows["attention"].endswith("* differs")
    headline = out[out.index("headline:") : out.index("metric differences")]
    for name in ("TTFT", "TPOT", "end to end", "pages/day", "peak memory", "max batch"):
        assert f"  {name} " in headline
    assert "+100.0%" in headline  # peak memory doubles at fp32
    assert out.index("headline:") < out.index("metric differences")
    same = CliRunner().invoke(cli, ["diff", str(analysed["h100"]), str(analysed["h100"])])
    assert same.exit_code == 0 and "same" in same.stdout


def test_counts_only_ignores_class_prefixes_and_constructor_extras(tmp_path: Path) -> None:
    fixture = _fixture_module()
    data = json.loads(to_json(fixture.small_result().model))
    renamed = json.loads(json.dumps(data))
    for mod in renamed["modules"]:
        mod["qualified_class_name"] = "deepencoder." + mod["qualified_class_name"].rsplit(".", 1)[-1]
        mod["constructor_params"] = {**mod["constructor_params"], "only_upstream_records_this": 1}
    for metric in renamed["module_metrics"]:
        metric["total_time_ms"] *= 2  # another device: time is not a count
    (tmp_path / "a.json").write_text(json.dumps(data))
    (tmp_path / "b.json").write_text(json.dumps(renamed))
    full = CliRunner().invoke(cli, ["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert full.exit_code == 1 and "class_name" in full.stdout
    counts = CliRunner().invoke(cli, ["diff", "--counts-only", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert counts.exit_code == 0, counts.stdout
    assert "counts only" in counts.stdout
    renamed["module_metrics"][-1]["total_flops_tflops"] *= 1.5
    (tmp_path / "c.json").write_text(json.dumps(renamed))
    drift = CliRunner().invoke(cli, ["diff", "--counts-only", str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    assert drift.exit_code == 1 and "FLOPs" in drift.stdout
