"""`llm-perf-opt analyze` through click's runner: files, exit codes, one-line errors, no partial output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli

TINY = ["--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4"]


def test_analyze_writes_the_report_folder(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "report.md")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"model.json", "summary.json", "report.yaml", "validation.json", "report.md"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name != "r"]  # no staging folder left behind


def test_progress_goes_to_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal: no progress unless asked for; asked for: one line per finished step, on stderr only."""
    from llm_perf_opt.cli import progress

    quiet = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(tmp_path / "r")])
    assert quiet.exit_code == 0
    assert "tracing" not in quiet.stderr and "TTFT" in quiet.stderr
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    monkeypatch.setattr(progress, "SLOW_STEP_S", 0.0)
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0
    assert "tracing deepseek-ocr-v1-tiny" in result.stderr and "writing the report" in result.stderr
    assert "tracing" not in result.stdout
    silent = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(tmp_path / "r"), "--quiet"])
    assert silent.stderr == ""


def test_format_json_prints_the_summary_for_scripts(tmp_path: Path) -> None:
    import json

    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(tmp_path / "r"), "--quiet", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (
        data["headline"]["fits"] is True and data["headline"]["ttft_ms"] > 0 and data["report"] == str(tmp_path / "r")
    )
    # which runtime and profile made the times, and how far they can be trusted, machine-readable
    headline = data["headline"]
    assert (headline["runtime"], headline["calibrated"]) == ("hf-eager", False)
    assert headline["profile"] == "llm-perf-opt defaults (eager)"
    assert headline["expected_error"].startswith("docs/validation.md, H100 bf16: uncalibrated")
    assert headline["expected_error"].endswith("; this run is uncalibrated")
    report_md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert headline["expected_error"] in report_md and headline["profile"] in report_md


def test_format_json_headline_tells_runtimes_and_calibration_apart(tmp_path: Path) -> None:
    import json

    def headline(*extra: str) -> dict[str, object]:
        args = ["analyze", *TINY, "--out", str(tmp_path / "r"), "--quiet", "--format", "json", *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout)["headline"])

    vllm = headline("--runtime", "vllm")
    assert vllm["runtime"] == "vllm" and str(vllm["expected_error"]).startswith("not validated")
    # a runtime that prefills in chunks (a catalog fact) is told apart from the HF footprint the memory section sizes
    note = "These figures are the HF eager footprint, not vllm's"
    assert note in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    calibrated = headline("--device-profile", "h100-sxm-hf-eager-gate")
    assert (calibrated["runtime"], calibrated["calibrated"]) == ("hf-eager", True)
    assert "HF eager footprint, not" not in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert not str(calibrated["expected_error"]).endswith("this run is uncalibrated")
    assert str(calibrated["profile"]).startswith("llm-perf-opt calibrate on meas-")  # the shipped file's source
    # hf-flash times the traced tree with the profile (calibrated); vllm's and hf-cuda-graph's kernel models do not
    # read it, so the same H100 profile leaves their times uncalibrated
    assert headline("--device-profile", "h100-sxm-hf-eager-gate", "--runtime", "hf-flash")["calibrated"] is True
    for runtime in ("vllm", "hf-cuda-graph"):
        other = headline("--device-profile", "h100-sxm-hf-eager-gate", "--runtime", runtime)
        assert other["calibrated"] is False, runtime


def _one_line_error(args: list[str], tmp_path: Path, expected: str) -> None:
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, ["analyze", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_device(tmp_path: Path) -> None:
    _one_line_error(["--device", "h999"], tmp_path, "h100-sxm")


def test_unknown_mode(tmp_path: Path) -> None:
    _one_line_error(["--mode", "huge"], tmp_path, "gundam")


def test_unknown_workload(tmp_path: Path) -> None:
    _one_line_error(["--workload", "nope"], tmp_path, "dsocr-standard-v1")


def test_zero_page(tmp_path: Path) -> None:
    _one_line_error(["--image", "0x0"], tmp_path, "page width")


def test_unknown_model(tmp_path: Path) -> None:
    _one_line_error(["--model", "gpt-9"], tmp_path, "deepseek-ocr-v1-base")


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(blocker / "sub")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "--out" in result.stderr
    assert blocker.read_text() == "x"


def test_out_in_proc_fails_before_the_trace(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", "/proc/x"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --out /proc/x") and "tracing" not in result.stderr


def test_out_into_a_used_folder_leaves_nothing_stale(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(out), "--quiet"]).exit_code == 0
    (out / "layers" / "Ocr2OnlyLayer.md").write_text("a page of another model")
    assert CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(out), "--quiet"]).exit_code == 0
    assert not (out / "layers" / "Ocr2OnlyLayer.md").exists()
    assert (out / "report.md").exists()


def test_malformed_image_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", "--image", "big", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "WIDTHxHEIGHT" in result.stderr


def test_store_receives_the_same_report(tmp_path: Path) -> None:
    from llm_perf_opt.store import ReportStore

    out, store = tmp_path / "r", tmp_path / "store"
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(out), "--store", str(store), "--quiet"])
    assert result.exit_code == 0, result.output
    reports = ReportStore(store).list_reports()
    assert len(reports) == 1
    assert ReportStore(store).read(reports[0], "summary.json") == (out / "summary.json").read_bytes()


def test_a_histogram_with_fewer_experts_than_top_k_is_refused(tmp_path: Path) -> None:
    top_k, experts = 6, 64  # the base model routes each token to 6 of 64 experts
    hist = tmp_path / "hist.json"
    hist.write_text(
        json.dumps({str(layer): [100] * (top_k - 1) + [0] * (experts - top_k + 1) for layer in range(1, 12)})
    )
    expected = "layer 1 has 5 experts with counts; top-6 routing needs at least 6"
    _one_line_error(["--routing", f"histogram:{hist}"], tmp_path, expected)
