"""``llm-perf-opt measure`` through click: a tiny CPU run, and one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.cli.measure import parse_page
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.record import Measurement, load_measurement, save_measurement


def test_measure_writes_a_loadable_file(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    args = [
        "measure", "--model", "deepseek-ocr-v1-tiny", "--runtime-device", "cpu", "--mode", "tiny", "--page", "512x512",
        "--max-new-tokens", "2", "--warmup", "0", "--repeats", "1", "--no-benchmark", "--no-profile",
        "--attention", "sdpa", "--statistic", "min", "--routing", "balanced", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    m = load_measurement(out)
    assert (m.attention, m.dtype, m.device.threads, m.workload.seq_len) == ("sdpa", "fp32", 1, 83)
    assert m.statistic == "min" and m.routing == "balanced"
    assert m.label().endswith("cpu fp32 sdpa, balanced routing")
    assert m.kernels is None and m.device.matmul_flops_per_s is None
    assert "TTFT" in result.output and str(out) in result.output


def test_two_attentions_in_one_process_write_one_file_each(tmp_path: Path) -> None:
    args = [
        "measure", "--model", "deepseek-ocr-v1-tiny", "--mode", "tiny", "--page", "512x512", "--max-new-tokens", "2",
        "--warmup", "0", "--repeats", "2", "--no-benchmark", "--attention", "sdpa", "--attention", "eager",
        "--out", str(tmp_path / "m-{attention}.json"),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    sdpa, eager = load_measurement(tmp_path / "m-sdpa.json"), load_measurement(tmp_path / "m-eager.json")
    assert (sdpa.attention, eager.attention) == ("sdpa", "eager")
    assert len(sdpa.runs) == len(eager.runs) == 2
    assert "timed round-robin with eager" in sdpa.notes and "timed round-robin with sdpa" in eager.notes
    assert sdpa.run_id != eager.run_id
    # the extra profiled prefill: more ops than one decode step; CPU has no device busy time
    assert sdpa.prefill_kernels is not None and sdpa.kernels is not None
    assert sdpa.prefill_kernels.step == 0 and sdpa.prefill_kernels.per_decode_step > sdpa.kernels.per_decode_step
    assert sdpa.prefill_kernels.device_busy_s is None
    assert eager.kernels is not None and eager.kernels.per_decode_step > sdpa.kernels.per_decode_step


def test_preset_with_a_changed_length_is_no_longer_the_preset() -> None:
    from llm_perf_opt.cli.measure import resolve_workload
    from llm_perf_opt.config import DeepseekOCRConfig

    cfg = DeepseekOCRConfig.tiny()
    kwargs = {"config": cfg, "mode": None, "page": None, "prompt_tokens": None, "batch": None}
    workload, preset = resolve_workload(workload_id="dsocr-base-v1", max_new_tokens=None, **kwargs)
    assert (preset, workload.seq_len, workload.max_new_tokens) == ("dsocr-base-v1", 283, 512)
    workload, preset = resolve_workload(workload_id="dsocr-base-v1", max_new_tokens=4, **kwargs)
    assert (preset, workload.max_new_tokens) == (None, 4)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--workload", "dsocr-base-v1", "--mode", "tiny"], "--workload fixes mode"),
        ([], "give a workload"),
        (["--mode", "tiny"], "--mode tiny has no --page WxH; give a workload"),
        (["--page", "512x512"], "--page 512x512 has no --mode MODE; give a workload"),
        (["--mode", "tiny", "--page", "512"], "WIDTHxHEIGHT"),
        (["--model", "nope", "--mode", "tiny", "--page", "512x512"], "unknown model source 'nope'"),
        (["--mode", "tiny", "--page", "512x512", "--repeats", "0"], "--repeats must be >= 1"),
        (["--mode", "tiny", "--page", "512x512", "--attention", "eager", "--attention", "sdpa"], "put {attention}"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path: Path, extra: list[str], fragment: str) -> None:
    result = CliRunner().invoke(cli, ["measure", "--out", str(tmp_path / "m.json"), *extra])
    assert result.exit_code == 1
    assert fragment in result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_parse_page() -> None:
    assert parse_page(" 1240x1754 ") == (1240, 1754)
    with pytest.raises(UserError):
        parse_page("1240 by 1754")


def test_measure_memory_adds_memory_and_keeps_the_timings(
    tmp_path: Path, measurement_factory: Callable[..., Measurement]
) -> None:
    path = tmp_path / "old.json"
    save_measurement(measurement_factory(), path)  # tiny model, tiny mode, N=4, no memory (as schema 1 files)
    result = CliRunner().invoke(cli, ["measure-memory", str(path)])
    assert result.exit_code == 0, result.output
    before, after = measurement_factory(), load_measurement(path)
    assert after.runs == before.runs and after.run_id == before.run_id
    assert after.memory is not None and [s.stage for s in after.memory.stages] == [
        "vision",
        "projector",
        "prefill",
        "decode",
    ]
    assert "memory added" in after.notes and "timings unchanged" in after.notes
    assert "peak above weights (live-bytes)" in result.output


def test_a_missing_workload_is_refused_before_torch_loads(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from llm_perf_opt.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['measure', '--mode', 'tiny', '--out', {str(tmp_path / 'm.json')!r}])\n"
        "print(result.exit_code, repr(result.output), 'torch' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    message = "error: --mode tiny has no --page WxH; give a workload: --workload ID, or --mode MODE and --page WxH\n"
    assert done.stdout == f"1 {message!r} False\n"
