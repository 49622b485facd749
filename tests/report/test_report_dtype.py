"""One source of truth for bytes and memory per dtype: every output of one analysis shows the same dtype-scaled
numbers (issue 17, item 1).  The tiny variant is analysed at fp32, bf16 and fp8; each file is checked against the
others and against the bf16 counts rescaled by the element width (x2 for fp32, floor /2 for fp8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.report.files import report_files
from llm_perf_opt.report.humanize import fmt_bytes

DTYPES = ("fp32", "bf16", "fp8")


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dtype in DTYPES:
        options = AnalysisOptions(
            model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, dtype=dtype
        )
        files = report_files(run_analysis(options))
        out[dtype] = {
            "yaml": yaml.safe_load(files["report.yaml"]),
            "model": json.loads(files["model.json"]),
            "summary": json.loads(files["summary.json"]),
            "validation": json.loads(files["validation.json"]),
            "md": files["report.md"].decode("utf-8"),
            "layers": {k: v.decode("utf-8") for k, v in files.items() if k.startswith("layers/")},
        }
    return out


def _yaml_modules(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["module_id"]: m for m in o["yaml"]["modules"]}


def _metrics(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["module_id"]: m for m in o["model"]["module_metrics"]}


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_file_shows_the_same_bytes(outputs: dict[str, dict[str, Any]], dtype: str) -> None:
    o = outputs[dtype]
    modules, metrics = _yaml_modules(o), _metrics(o)
    validation = {n["module_id"]: n["traced"] for n in o["validation"]["nodes"] if n.get("traced")}
    for nid, m in modules.items():
        assert metrics[nid]["total_io_tb"] == pytest.approx(m["bytes"] / 1e12, rel=1e-8), nid
        assert metrics[nid]["memory_weights_gb"] == pytest.approx(m["weight_bytes"] / 1e9, rel=1e-8), nid
        if nid in validation:
            assert validation[nid]["bytes_read"] + validation[nid]["bytes_written"] == m["bytes"], nid
    memory = o["yaml"]["memory"]
    assert metrics["root"]["memory_weights_gb"] == pytest.approx(memory["weights_bytes"] / 1e9, rel=1e-8)
    for stage, label in (("vision", "| Vision ("), ("prefill", "| Prefill |"), ("decode", "| Decode, ")):
        row = next(line for line in o["md"].splitlines() if line.startswith(label))
        assert f"| {fmt_bytes(modules[stage]['bytes'])} |" in row, (stage, row)
    for cat, values in o["yaml"]["categories"].items():
        if values["bytes"]:
            assert fmt_bytes(values["bytes"]) in o["md"], cat
    lm_head = modules["decode/lm_head"]
    page = o["layers"]["layers/Linear.md"]
    row = next(line for line in page.splitlines() if line.startswith("| `decode/lm_head`"))
    assert f"| {fmt_bytes(lm_head['bytes'])} |" in row


def test_bytes_and_memory_scale_with_the_element_width(outputs: dict[str, dict[str, Any]]) -> None:
    bf16 = _yaml_modules(outputs["bf16"])
    for dtype, scale in (("fp32", lambda n: 2 * n), ("fp8", lambda n: n // 2)):
        mods = _yaml_modules(outputs[dtype])
        assert mods["root"]["bytes"] == scale(bf16["root"]["bytes"])
        assert mods["decode/lm_head"]["weight_bytes"] == scale(bf16["decode/lm_head"]["weight_bytes"])
        for key in ("weights_bytes", "kv_cache_bytes", "peak_activation_bytes"):
            assert outputs[dtype]["yaml"]["memory"][key] == scale(outputs["bf16"]["yaml"]["memory"][key]), key


def test_time_reads_the_bytes_the_tables_show(outputs: dict[str, dict[str, Any]]) -> None:
    """Decode on the tiny model is memory/overhead bound: its memory-bound time doubles with the bytes at fp32."""
    bf16 = outputs["bf16"]["yaml"]["time"]["bounds"]["decode"]["memory_bound_ms"]
    fp32 = outputs["fp32"]["yaml"]["time"]["bounds"]["decode"]["memory_bound_ms"]
    assert fp32 == pytest.approx(2 * bf16, rel=1e-6)


@pytest.mark.parametrize("batch", [1, 8])
def test_sweep_and_analyze_share_one_memory_function(batch: int) -> None:
    """The same configuration gives the same GB and the same max batch in ``sweep`` and ``analyze`` (item 2)."""
    from llm_perf_opt.config import DeepseekOCRConfig
    from llm_perf_opt.perf.sweep import SweepSpec, run_sweep

    options = AnalysisOptions(
        model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, batch_size=batch, dtype="fp32"
    )
    result = run_analysis(options)
    spec = SweepSpec(
        devices=("h100-sxm",),
        pages=(("tiny", (512, 512)),),
        batch_sizes=(batch,),
        max_new_tokens=(4,),
        dtypes=("fp32",),
    )
    (row,) = run_sweep(spec, config=DeepseekOCRConfig.tiny()).rows
    assert row.memory_gb * 1e9 == pytest.approx(result.memory.total_bytes, rel=1e-12)
    assert row.weights_gb * 1e9 == pytest.approx(result.memory.weights_bytes, rel=1e-12)
    assert row.max_batch == result.capacity.max_batch
