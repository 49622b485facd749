"""``llm-perf-opt compare --device a,b``: one trace, each device's column equal to its own analyze run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.cli import cli

TINY = ["--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4", "--quiet"]


def test_each_column_is_that_devices_analysis(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        cli, ["compare", "--device", "h100-sxm,a100-80gb", *TINY, "--format", "json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["device_id"] for d in data["devices"]] == ["h100-sxm", "a100-80gb"]
    for column in data["devices"]:
        alone = run_analysis(
            AnalysisOptions(
                model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, device=column["device_id"]
            )
        )
        assert column["stages_ms"]["end_to_end_ms"] == pytest.approx(alone.stages.end_to_end_s * 1e3, rel=1e-8)
        assert column["max_batch"] == alone.capacity.max_batch
    md = (out / "compare.md").read_text()
    assert "| **end to end** |" in md and "(`a100-80gb`)" in md and "Fastest end to end" in md


def test_devices_without_the_dtype_are_listed_and_one_device_is_refused() -> None:
    result = CliRunner().invoke(cli, ["compare", "--device", "h100-sxm,a100-80gb", *TINY, "--dtype", "fp8"])
    assert result.exit_code == 0, result.output
    assert "- skipped: a100-80gb: no fp8 peak" in result.stdout
    one = CliRunner().invoke(cli, ["compare", "--device", "h100-sxm", *TINY])
    assert one.exit_code == 1 and one.stderr.startswith("error: --device lists 1 device(s)")


@pytest.mark.parametrize(("devices", "dtype"), [("t4,a10", "bf16"), ("a100-80gb,h100-sxm", "fp8")])
def test_a_device_without_the_dtype_is_skipped_wherever_it_stands(devices: str, dtype: str) -> None:
    """Issue 14 follow-up (F5): the first device lacking the dtype used to stop the run ("device t4 has no peak")
    while a later one was skipped; now both are skipped with the reason, and the times name runtime and trust."""
    result = CliRunner().invoke(cli, ["compare", "--device", devices, *TINY, "--dtype", dtype, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    lacking, having = devices.split(",")
    assert [d["device_id"] for d in data["devices"]] == [having]
    assert len(data["skipped"]) == 1 and data["skipped"][0].startswith(f"{lacking}: no {dtype} peak (")
    assert data["runtime"] == "hf-eager" and "docs/validation.md" in data["trust"]
    # the H100 band only on the H100 (F19): elsewhere not validated, with H100 as the nearest measured reference
    measured = having == "h100-sxm"
    assert data["trust"].startswith("expected error: docs/validation.md") == measured
    assert ("not validated on this device" in data["trust"]) != measured
    md = CliRunner().invoke(cli, ["compare", "--device", devices, *TINY, "--dtype", dtype])
    assert md.exit_code == 0 and f"- skipped: {lacking}: no {dtype} peak" in md.stdout
    assert "Runtime: hf-eager; expected error: " in md.stdout


@pytest.mark.parametrize(
    ("devices", "dtype", "start"),
    [
        ("t4,a10", "fp8", "error: --dtype 'fp8': none of the devices has a peak for it (t4: fp32, fp16; a10: "),
        ("h100-sxm,a100-80gb,h100-sxm", "bf16", "error: --device lists h100-sxm more than once; name each device once"),
    ],
)
def test_no_device_with_the_dtype_or_a_repeated_device_is_one_line(devices: str, dtype: str, start: str) -> None:
    result = CliRunner().invoke(cli, ["compare", "--device", devices, *TINY, "--dtype", dtype])
    assert result.exit_code == 1
    assert result.stderr.startswith(start) and result.stderr.count("\n") == 1 and not result.stdout


def test_shell_completion_as_the_readme_documents_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "_LLM_PERF_OPT_COMPLETE=bash_source llm-perf-opt" in readme
    env = {"_LLM_PERF_OPT_COMPLETE": "bash_complete", "COMP_WORDS": "llm-perf-opt comp", "COMP_CWORD": "1"}
    result = CliRunner().invoke(cli, [], prog_name="llm-perf-opt", env=env)
    assert "plain,compare" in result.stdout


def test_runtime_columns_equal_analyze_with_that_runtime(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["compare", "--device", "a100-40gb,mi300x", *TINY, "--runtime", "vllm", "--text-only", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["runtime"] == "vllm" and data["text_only"] is True
    assert data["trust"].startswith("expected error: ")
    for column in data["devices"]:
        alone = run_analysis(
            AnalysisOptions(
                model="deepseek-ocr-v1-tiny",
                workload_id="dsocr-tiny-v1",
                max_new_tokens=4,
                device=column["device_id"],
                runtime="vllm",
                text_only=True,
            )
        )
        assert column["stages_ms"]["ttft_ms"] == pytest.approx(alone.stages.ttft_s * 1e3, rel=1e-8)
        assert column["stages_ms"]["end_to_end_ms"] == pytest.approx(alone.stages.end_to_end_s * 1e3, rel=1e-8)
        assert column["profile"] == "runtime vllm kernel model"
    md = CliRunner().invoke(cli, ["compare", "--device", "a100-40gb,mi300x", *TINY, "--runtime", "sglang"])
    assert md.exit_code == 0, md.output
    # one trust line per device: SGLang's band was measured on MI300X, not on the A100
    assert "Runtime: sglang; a100-40gb: expected error: not validated on this device (no measurements)" in md.stdout
    assert ". mi300x: expected error: +-19% on 2 published" in md.stdout


@pytest.mark.parametrize(
    ("extra", "start"),
    [
        (["--runtime", "tensorrt"], "error: --runtime 'tensorrt': unknown inference runtime"),
        (["--runtime", "vllm", "--attention", "eager"], "error: --runtime 'vllm': runs flash attention only"),
    ],
)
def test_bad_runtime_is_one_line_and_exit_1(extra: list[str], start: str) -> None:
    result = CliRunner().invoke(cli, ["compare", "--device", "h100-sxm,a100-80gb", *TINY, *extra])
    assert result.exit_code == 1
    assert result.stderr.startswith(start) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
