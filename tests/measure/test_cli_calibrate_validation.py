"""``llm-perf-opt calibrate`` and ``validation-doc`` on a real tiny CPU measurement (traced once, a few seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure import meta_trace, predict
from llm_perf_opt.measure.record import load_measurement, save_measurement
from llm_perf_opt.measure.trace_pool import PROCESSES_ENV
from llm_perf_opt.perf.efficiency import load_device_profile
from llm_perf_opt.tracecache import CACHE_DIR_ENV


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("measurements")
    args = [
        "measure", "--model", "deepseek-ocr-v1-tiny", "--mode", "tiny", "--page", "512x512", "--max-new-tokens", "3",
        "--warmup", "1", "--repeats", "2", "--attention", "sdpa", "--out", str(folder / "tiny-cpu-sdpa.json"),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return folder


COMMITTED_CPU = sorted((Path(__file__).parents[2] / "benchmarks" / "measurements").glob("cpu-tiny-*.json"))


def test_calibrate_writes_a_profile_analyze_can_read(tmp_path: Path) -> None:
    """The four committed CPU runs of the tiny variant (two workloads, two attentions) identify every parameter."""
    assert len(COMMITTED_CPU) == 4
    out = tmp_path / "cpu.yaml"
    result = CliRunner().invoke(cli, ["calibrate", *map(str, COMMITTED_CPU), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    profile = load_device_profile(out)
    assert profile.device_id == "cpu"
    assert 0 < profile.efficiency("linear") <= 1 and profile.kernel_overhead_s >= 0
    for path in COMMITTED_CPU:
        m = load_measurement(path)
        assert m.run_id in profile.source
        for stage in ("vision", "projector", "prefill", "decode"):
            assert f"{m.run_id} / {stage}:" in result.output
    reversed_out = tmp_path / "reversed.yaml"
    args = ["calibrate", *map(str, reversed(COMMITTED_CPU)), "--out", str(reversed_out), "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert reversed_out.read_bytes() == out.read_bytes()  # the same files in any order: the same profile
    twice = CliRunner().invoke(cli, ["calibrate", *map(str, COMMITTED_CPU), str(COMMITTED_CPU[0]), "--out", str(out)])
    assert twice.exit_code == 1 and "is given 2 times" in twice.stderr and "pass each run once" in twice.stderr


def test_calibrate_refuses_a_lone_run_that_cannot_identify_its_parameters(tmp_path: Path) -> None:
    """One committed run of the tiny workload cannot tell its efficiencies from its per-kernel overheads: one line
    naming them, exit 1.  (A committed file, not a fresh measurement: which parameters end at a bound - and so which
    are left to identify - depends on the measured times, and a fresh run on a loaded machine sometimes pins enough
    of them to its bounds to leave an identified remainder.)"""
    lone = next(p for p in COMMITTED_CPU if "tiny-512x512-fp32-sdpa" in p.name)
    result = CliRunner().invoke(cli, ["calibrate", str(lone), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert result.output.startswith("error: calibration: the measurements do not tell ")
    assert "add measurements that vary them" in result.output and "Traceback" not in result.output


def test_calibrate_refuses_two_devices(measured: Path, tmp_path: Path) -> None:
    m = load_measurement(measured / "tiny-cpu-sdpa.json")
    gpu = evolve(m, run_id="meas-gpu", dtype="bf16", device=evolve(m.device, runtime="cuda", device_id="h100-sxm"))
    save_measurement(gpu, tmp_path / "gpu.json")
    args = ["calibrate", str(measured / "tiny-cpu-sdpa.json"), str(tmp_path / "gpu.json"), "--out", "x.json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "one device, dtype and MoE routing at a time, got cpu fp32 gate routing (1 file), h100-sxm bf16 gate " \
        "routing (1 file); pass the files of one of them" in result.output  # fmt: skip


def test_calibrate_refuses_two_routings(measured: Path, tmp_path: Path) -> None:
    m = load_measurement(measured / "tiny-cpu-sdpa.json")
    save_measurement(evolve(m, run_id="meas-balanced", routing="balanced"), tmp_path / "balanced.json")
    args = ["calibrate", str(measured / "tiny-cpu-sdpa.json"), str(tmp_path / "balanced.json"), "--out", "x.json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert (
        "got cpu fp32 balanced routing (1 file), cpu fp32 gate routing (1 file); pass the files of one of them"
        in result.output
    )


def test_validation_doc_writes_checks_and_detects_staleness(measured: Path, tmp_path: Path) -> None:
    source = tmp_path / "measurements"
    shutil.copytree(measured, source)
    doc = tmp_path / "validation.md"
    args = ["validation-doc", "--measurements", str(source), "--out", str(doc)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = doc.read_text(encoding="utf-8")
    m = load_measurement(source / "tiny-cpu-sdpa.json")
    assert f"### `{m.run_id}`" in text and "No GPU measurement exists yet" in text
    assert CliRunner().invoke(cli, [*args, "--check"]).exit_code == 0
    doc.write_text(text + "edited by hand\n", encoding="utf-8")
    stale = CliRunner().invoke(cli, [*args, "--check"])
    assert stale.exit_code == 1 and "out of date" in stale.output


def test_validation_doc_compares_memory_only_files_for_memory(measured: Path, tmp_path: Path) -> None:
    source = tmp_path / "measurements"
    shutil.copytree(measured, source)
    m = load_measurement(source / "tiny-cpu-sdpa.json")
    (source / "memory").mkdir()
    save_measurement(evolve(m, run_id="meas-memory-only"), source / "memory" / "extra.json")
    doc = tmp_path / "validation.md"
    result = CliRunner().invoke(cli, ["validation-doc", "--measurements", str(source), "--out", str(doc)])
    assert result.exit_code == 0, result.output
    text = doc.read_text(encoding="utf-8")
    assert "Peak memory goal, every stage within +-10%: 8/8 stage peaks of 2 measurement(s)." in text
    assert "| `meas-memory-only` | deepseek-ocr-v1-tiny |" in text  # in the memory tables
    assert "### `meas-memory-only`" not in text  # not in the time comparison


def test_validation_doc_without_measurements_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["validation-doc", "--measurements", str(tmp_path), "--out", str(tmp_path / "v.md")]
    )
    assert result.exit_code == 1 and "no measurement files" in result.output


def _validation_doc(source: Path, out: Path, processes: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """One validation-doc run as a fresh process sees it (empty trace cache, nothing traced in memory)."""
    monkeypatch.setenv(PROCESSES_ENV, processes)
    monkeypatch.setenv(CACHE_DIR_ENV, str(out.parent / f"cache-{processes}"))
    predict.forget_traces()
    result = CliRunner().invoke(cli, ["validation-doc", "--measurements", str(source), "--out", str(out), "--quiet"])
    return result.exit_code, result.output


def test_validation_doc_is_the_same_over_one_process_or_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "measurements"
    source.mkdir()
    for path in COMMITTED_CPU:  # two tiny workloads, eager and sdpa: four trees, then four fp32 memory traces
        shutil.copy(path, source / path.name)
    serial = _validation_doc(source, tmp_path / "serial.md", "1", monkeypatch)
    pooled = _validation_doc(source, tmp_path / "pooled.md", "2", monkeypatch)
    assert serial[0] == pooled[0] == 0, serial[1] + pooled[1]
    assert (tmp_path / "serial.md").read_bytes() == (tmp_path / "pooled.md").read_bytes()


def test_a_trace_that_fails_in_a_worker_is_the_serial_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "measurements"
    source.mkdir()
    for path in COMMITTED_CPU:
        shutil.copy(path, source / path.name)
    real = meta_trace.trace_workload

    def refusing(src: Any, workload: Any, **kwargs: Any) -> Any:
        if workload.mode.name == "base":
            raise UserError("the base page cannot be traced here (test)")
        return real(src, workload, **kwargs)

    monkeypatch.setattr(meta_trace, "trace_workload", refusing)
    serial = _validation_doc(source, tmp_path / "serial.md", "1", monkeypatch)
    pooled = _validation_doc(source, tmp_path / "pooled.md", "2", monkeypatch)
    assert serial == pooled
    assert serial[0] == 1 and "error: the base page cannot be traced here (test)" in serial[1]
