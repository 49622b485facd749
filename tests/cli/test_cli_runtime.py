"""``analyze --runtime`` / ``--text-only`` and ``sweep --runtime``: the runtime's time in every file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from llm_perf_opt.analysis.options import AnalysisOptions, report_id_for
from llm_perf_opt.cli import cli

TINY = ["--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4"]


def test_unknown_runtime_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", "--runtime", "trt", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "--runtime 'trt': unknown inference runtime" in result.output


def test_runtime_that_cannot_run_the_source_is_one_line_and_exit_1(tmp_path: Path) -> None:
    args = ["analyze", "--model", "hf-snapshot:/nowhere", "--runtime", "vllm", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "runs flash attention only" in result.output and result.output.strip().count("\n") == 0


def test_default_runtime_keeps_report_ids_and_others_change_them() -> None:
    assert AnalysisOptions().canonical().get("runtime") is None
    assert report_id_for(AnalysisOptions(runtime="vllm")) != report_id_for(AnalysisOptions())
    assert report_id_for(AnalysisOptions(text_only=True)) != report_id_for(AnalysisOptions())


def test_analyze_with_vllm_shows_the_runtime_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--runtime", "vllm", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Runtime" in report and "kernels per decode step" in report and "Why is decode this slow" in report
    assert "--runtime vllm" in report
    time = yaml.safe_load((out / "report.yaml").read_text(encoding="utf-8"))["time"]["stages_ms"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert abs(summary["predicted_total_time_ms"] - time["end_to_end_ms"]) < 1e-3
    assert "runtime: vllm" in summary["notes"] and "expected error" in summary["notes"]
    # vllm's kernel model does not read the device profile: the notes say what the profile times, not "calibrated"
    assert (
        "it times the eager per-module breakdown only (this runtime's kernel model does not read it)"
        in (summary["notes"])
    )
    assert "calibrated on this device" not in summary["notes"]
    # every stage number is the runtime's: the bound split sums to the runtime's stage times, the eager tree's
    # per-module times are labelled as such and never enter a headline share
    bounds = yaml.safe_load((out / "report.yaml").read_text(encoding="utf-8"))["time"]["bounds"]
    for stage in ("vision", "prefill", "decode", "root"):
        b = bounds[stage]
        parts = b["compute_bound_ms"] + b["memory_bound_ms"] + b["overhead_ms"]
        assert abs(parts - time[f"{'end_to_end' if stage == 'root' else stage}_ms"]) < 1e-3, stage
    assert "Slowest module (own time)" not in report and "Largest module group of a decode step (vllm)" in report
    top = report.split("## Where the time goes: top modules")[1].split("##")[0]
    assert "**Eager op-by-op breakdown**, not the vllm runtime" in top
    assert "eager op-by-op breakdown (hf-eager, end to end" in summary["notes"]


def test_text_only_and_named_profile(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["analyze", *TINY, "--runtime", "sglang", "--text-only", "--device", "h100-sxm"]
    args += ["--device-profile", "h100-sxm-hf-eager-gate", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # an H100 profile does not calibrate sglang's times (its kernel model does not read it): never "calibrated"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Times from runtime sglang's kernel model (its own constants; the device profile" in md
    assert "(calibrated on this device)" not in md
    report = yaml.safe_load((out / "report.yaml").read_text(encoding="utf-8"))["time"]
    time, rates = report["stages_ms"], report["throughput"]
    assert time["vision_ms"] == 0.0 and time["ttft_ms"] > 0
    assert rates["tokens_per_s"] > 0 and rates["pages_per_s"] is None and rates["pages_per_day"] is None  # no page
    assert "Text-only request" in (out / "report.md").read_text(encoding="utf-8")
    # the text-only request is what was traced: no encoder node anywhere, S = 1 BOS + prompt, validation passes
    model = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert not [m["module_id"] for m in model["modules"] if m["module_id"].startswith(("vision", "projector"))]
    assert model["workload"]["seq_len"] == model["workload"]["prompt_tokens"] + 1
    assert "**status: pass**" in (out / "report.md").read_text(encoding="utf-8")
    assert "gundam" not in (out / "report.md").read_text(encoding="utf-8").splitlines()[0]


def test_text_only_says_so_once_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--text-only", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("text only (no image), ") and first.count("text only") == 1, first


def test_text_only_is_refused_for_deepseek_ocr_2(tmp_path: Path) -> None:
    args = ["analyze", "--model", "deepseek-ocr-2", "--text-only", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert (
        "--text-only 'deepseek-ocr-2': text-only requests are traced for the built-in DeepSeek-OCR v1" in result.output
    )


def test_sweep_runtime_and_deprecated_execution() -> None:
    base = ["sweep", "--device", "a100-40gb", "--max-new-tokens", "8", "--format", "csv"]
    fast = CliRunner().invoke(cli, [*base, "--runtime", "vllm"])
    slow = CliRunner().invoke(cli, base)
    assert fast.exit_code == 0 and slow.exit_code == 0, fast.output + slow.output
    header = fast.stdout.splitlines()[0].split(",")
    col = header.index("tpot_ms")
    assert float(fast.stdout.splitlines()[1].split(",")[col]) < float(slow.stdout.splitlines()[1].split(",")[col])
    old = CliRunner().invoke(cli, [*base, "--execution", "cuda-graph"])
    assert old.exit_code == 0 and "--execution is deprecated; use --runtime hf-cuda-graph" in old.stderr
