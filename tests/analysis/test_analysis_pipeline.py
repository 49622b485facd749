"""The analysis pipeline end to end on the tiny variant (seconds), plus its contract output."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import yaml
from attrs import evolve

from llm_perf_opt.analysis.options import AnalysisOptions, options_from_request, report_id_for
from llm_perf_opt.analysis.pipeline import memory_peak_bytes, run_analysis
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.contracts import DeepSeekOCRAnalyticModel, DeepSeekOCRAnalyticReportSummary
from llm_perf_opt.contracts.converter import from_json
from llm_perf_opt.contracts.validation import load_report
from llm_perf_opt.measure.harness import HarnessOptions, builtin_config, run_measurement
from llm_perf_opt.measure.record import save_measurement
from llm_perf_opt.perf import capacity_check, footprint_at_dtype
from llm_perf_opt.perf.analytic_adapter import workload_costs_from_analytic
from llm_perf_opt.report.files import report_files, write_report
from llm_perf_opt.report.markdown import render_report_md
from llm_perf_opt.runtimes.bands import trust_line
from llm_perf_opt.workloads import preset_workload

TINY = AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=8)


@pytest.fixture(scope="module")
def tiny_result() -> AnalysisResult:
    return run_analysis(TINY)


def test_result_carries_the_request_and_its_id(tiny_result: AnalysisResult) -> None:
    assert tiny_result.report_id == report_id_for(TINY)
    assert tiny_result.model.report_id == tiny_result.summary.report_id == tiny_result.report_id
    assert tiny_result.workload.seq_len == 1 + 73 + 9  # tiny mode: 73 image tokens, 9 prompt tokens
    assert tiny_result.stages.decode_steps == 8 - 1


def test_contract_totals_are_the_trace_and_timing(tiny_result: AnalysisResult) -> None:
    root = tiny_result.trace.root
    metrics = {m.module_id: m for m in tiny_result.model.module_metrics}
    assert metrics["root"].total_flops_tflops == pytest.approx(root.cost.total_flops / 1e12, rel=1e-8)
    assert metrics["root"].total_time_ms == pytest.approx(tiny_result.timed.total_s * 1e3, rel=1e-8)
    assert tiny_result.model.predicted_total_time_ms == pytest.approx(tiny_result.stages.end_to_end_s * 1e3, rel=1e-6)
    assert metrics["root"].share_of_model_time == 1.0
    assert {m.module_id for m in tiny_result.model.modules} == set(tiny_result.trace.nodes)


def test_stage_times_add_up(tiny_result: AnalysisResult) -> None:
    s = tiny_result.stages
    assert s.ttft_s == pytest.approx(s.vision_s + s.projector_s + s.prefill_s)
    assert s.tpot_s == pytest.approx(s.decode_s / 7)
    assert s.end_to_end_s == pytest.approx(tiny_result.timed.total_s)


def test_summary_lists_modules_by_own_time(tiny_result: AnalysisResult) -> None:
    times = [m.total_time_ms for m in tiny_result.summary.top_modules]
    assert times == sorted(times, reverse=True)
    assert len(times) == 10
    assert all("/" in m.module_id for m in tiny_result.summary.top_modules)
    assert "attention kernel: flash" in tiny_result.summary.notes
    assert "MoE routing: balanced" in tiny_result.summary.notes


def test_summary_shares_are_of_the_breakdown_total_it_names(tiny_result: AnalysisResult) -> None:
    eager = tiny_result.summary
    assert (eager.runtime, eager.modules_runtime) == ("hf-eager", "hf-eager")
    assert eager.modules_total_time_ms == eager.predicted_total_time_ms
    vllm = run_analysis(evolve(TINY, runtime="vllm")).summary
    # the runtime's kernels make the request's time; the per-module times stay the eager op-by-op breakdown,
    # and the summary says so with the total every share is of (F18: a module above the request's total)
    assert (vllm.runtime, vllm.modules_runtime) == ("vllm", "hf-eager")
    assert vllm.modules_total_time_ms == eager.modules_total_time_ms
    assert vllm.predicted_total_time_ms < vllm.modules_total_time_ms
    for summary in (eager, vllm):
        assert summary.modules_total_time_ms is not None
        for m in summary.top_modules:
            assert m.share_of_model_time == pytest.approx(m.total_time_ms / summary.modules_total_time_ms, rel=1e-6)
            assert m.total_time_ms <= summary.modules_total_time_ms
    assert "modules_total_time_ms" in vllm.notes and "eager op-by-op breakdown (hf-eager" in vllm.notes


def test_every_file_carries_the_device_s_trust_line() -> None:
    on_l4 = run_analysis(evolve(TINY, device="l4"))
    line = trust_line("hf-eager", calibrated=False, device_id="l4", model="deepseek-ocr-v1-base")
    assert "not validated on this device" in line and "--device-profile" not in line
    files = report_files(on_l4)
    assert line in on_l4.summary.notes and line in files["summary.json"].decode()
    assert line in files["report.md"].decode() and line in yaml.safe_load(files["report.yaml"])["assumptions"]
    for name in ("report.md", "report.yaml", "summary.json"):
        assert "h100-sxm-hf-eager-gate" not in files[name].decode(), name


def test_kv_cache_counted_once_at_the_final_length(tiny_result: AnalysisResult) -> None:
    cfg = tiny_result.config
    per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * 2  # K and V, bf16
    assert tiny_result.memory.kv_cache_bytes == per_token * (83 + 8 - 1)


def test_memory_peak_is_the_closed_form_where_it_equals_the_trace(tiny_result: AnalysisResult) -> None:
    traced = tiny_result.trace.root.peak_activation_bytes
    root = next(n for n in tiny_result.validation["nodes"] if n["module_id"] == "root")
    assert root["analytic"]["peak_activation_bytes"] == traced  # v1: stage_peaks equals the trace
    m = tiny_result.memory
    assert m.peak_activation_bytes == traced
    assert m.total_bytes == m.weights_bytes + m.kv_cache_bytes + traced
    assert "the closed-form estimate `sweep` uses too" in render_report_md(tiny_result)
    # sweep's memory function on the same workload: the same bytes, hence the same total and largest batch
    costs = workload_costs_from_analytic(
        tiny_result.config, tiny_result.workload, attention="flash", routing=tiny_result.routing
    )
    swept = footprint_at_dtype(
        weight_bytes=costs.weight_bytes,
        kv_cache_bytes=costs.kv_cache_bytes,
        peak_activation_bytes=costs.peak_activation_bytes,
        batch_size=tiny_result.workload.batch_size,
        counted_dtype=costs.counted_dtype,
        dtype=tiny_result.dtype,
    )
    assert swept == m
    assert capacity_check(swept, tiny_result.device) == tiny_result.capacity


def test_memory_peak_falls_back_to_the_trace_where_the_closed_form_is_off() -> None:
    # DeepSeek-OCR-2 dynamic 1024x1024 (bf16, flash): closed form 566,231,040 B, trace 1,156,653,744 B (0.49x)
    assert memory_peak_bytes(traced=1_156_653_744, closed_form=566_231_040) == 1_156_653_744
    assert memory_peak_bytes(traced=1_156_653_744, closed_form=1_156_653_745) == 1_156_653_744  # even 1 B over
    assert memory_peak_bytes(traced=563_000_000, closed_form=563_000_000) == 563_000_000
    assert memory_peak_bytes(traced=0, closed_form=0) == 0


def test_files_are_complete_valid_and_deterministic(tiny_result: AnalysisResult, tmp_path: Path) -> None:
    files = report_files(tiny_result)
    for name in ("model.json", "summary.json", "report.yaml", "validation.json", "report.md", "options.json"):
        assert name in files
    assert any(p.startswith("layers/") for p in files)
    assert sorted(p for p in files if p.startswith("plots/")) == [
        "plots/category_shares.svg",
        "plots/roofline.svg",
        "plots/stage_times.svg",
    ]
    model = load_report(files["model.json"].decode())  # strict: raises on any validation problem
    assert isinstance(model, DeepSeekOCRAnalyticModel)
    summary = from_json(files["summary.json"].decode(), DeepSeekOCRAnalyticReportSummary)
    assert summary.report_id == tiny_result.report_id
    validation = json.loads(files["validation.json"])
    assert set(validation) >= {"stages", "nodes", "divergences"}
    again = report_files(run_analysis(TINY))
    for name in ("model.json", "summary.json", "report.md"):
        assert files[name] == again[name], name
    write_report(tiny_result, tmp_path / "out")
    assert (tmp_path / "out" / "report.md").read_bytes() == files["report.md"]


def test_request_becomes_options_with_its_extensions() -> None:
    from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest

    req = DeepSeekOCRAnalyticRequest(
        model_id="deepseek-ai/DeepSeek-OCR",
        model_variant="deepseek-ocr-v1-tiny",
        workload_profile_id="dsocr-standard-v1",
        device="h200",
        page_width=1920,
        page_height=1080,
        max_new_tokens=32,
    )
    options = options_from_request(req)
    assert (options.model, options.workload_id, options.device) == ("deepseek-ocr-v1-tiny", "dsocr-standard-v1", "h200")
    assert (options.page, options.max_new_tokens, options.attention) == ((1920, 1080), 32, "flash")
    plain = DeepSeekOCRAnalyticRequest(
        model_id="deepseek-ai/DeepSeek-OCR",
        model_variant="deepseek-ocr-v1-base",
        workload_profile_id="dsocr-standard-v1",
    )
    assert report_id_for(options_from_request(plain)) == report_id_for(AnalysisOptions())
    assert (options.runtime, options.text_only) == ("hf-eager", False)  # the extensions left out keep the defaults
    chosen = options_from_request(attrs.evolve(plain, runtime="sglang", text_only=True))
    assert (chosen.runtime, chosen.text_only) == ("sglang", True)
    assert report_id_for(chosen) == report_id_for(AnalysisOptions(runtime="sglang", text_only=True))


def test_profile_run_id_resolves_to_a_measurement(tmp_path: Path) -> None:
    from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest
    from llm_perf_opt.errors import UserError

    shipped = sorted(Path(__file__).resolve().parents[2].glob("benchmarks/measurements/*.json"))
    assert shipped, "benchmarks/measurements holds the committed CPU measurements"
    run_id = json.loads(shipped[0].read_text())["run_id"]
    req = DeepSeekOCRAnalyticRequest(
        model_id="m", model_variant="deepseek-ocr-v1-tiny", workload_profile_id="dsocr-tiny-v1", profile_run_id=run_id
    )
    assert options_from_request(req, measurements=shipped[0].parent).measured == str(shipped[0])
    with pytest.raises(UserError, match="no measurement with run id"):
        options_from_request(req, measurements=tmp_path)


def test_measured_mismatch_is_refused_or_flagged(tmp_path: Path) -> None:
    """A CPU fp32 eager measurement against the default H100 bf16 flash prediction (issue 17, item 4)."""
    from attrs import evolve
    from tests.measure.conftest import make_measurement

    from llm_perf_opt.errors import UserError
    from llm_perf_opt.measure.record import save_measurement
    from llm_perf_opt.report.markdown import render_report_md

    path = tmp_path / "cpu.json"
    save_measurement(make_measurement(), path)
    options = AnalysisOptions(
        model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, measured=str(path)
    )
    with pytest.raises(
        UserError,
        match=r"does not match the prediction \(device: measured cpu, predicted h100-sxm; "
        r"dtype: measured fp32, predicted bf16; attention: .*; "
        r"device type: measured cpu, predicted cuda\).*--allow-mismatch",
    ):
        run_analysis(options)
    flagged = run_analysis(evolve(options, allow_mismatch=True))
    assert flagged.measured is not None and len(flagged.measured["mismatches"]) == 4
    text = render_report_md(flagged)
    assert "**Warning: this measurement does not match the prediction**" in text
    assert report_id_for(evolve(options, allow_mismatch=True)) == report_id_for(options)


def test_measured_memory_rows_compare_every_stage_with_the_trace(tmp_path: Path) -> None:
    config = builtin_config("deepseek-ocr-v1-tiny")
    workload = evolve(preset_workload("dsocr-tiny-v1"), max_new_tokens=3)
    harness = HarnessOptions(threads=1, warmup_runs=0, repeats=1, benchmark=False, profile_kernels=False)
    measurement = run_measurement(config, workload, harness, model_name="deepseek-ocr-v1-tiny")
    path = tmp_path / "m.json"
    save_measurement(measurement, path)
    result = run_analysis(evolve(TINY, max_new_tokens=3, measured=str(path), allow_mismatch=True))  # a CPU run
    rows = result.validation["memory"]
    assert [r["stage"] for r in rows] == ["vision", "projector", "prefill", "decode"]
    assert measurement.memory is not None
    assert [r["measured_peak_bytes"] for r in rows] == [s.peak_bytes for s in measurement.memory.stages]
    assert all(r["rel_error"] == 0.0 for r in rows)  # the trace follows the same storages the run allocated
    text = render_report_md(result)
    assert "### Peak memory: predicted vs measured" in text
    assert "| vision |" in text and "+0.0% |" in text
    budget = result.validation["memory_budget"]
    assert budget["device"] == result.device.device_id
    assert budget["largest_batch_predicted"] == budget["largest_batch_measured"] > 0  # exact peaks, same batch
    assert f"predicted **{budget['largest_batch_predicted']:,}**" in text
