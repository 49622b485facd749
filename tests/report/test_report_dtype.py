"""One source of truth for bytes and memory per dtype: every output of one analysis shows the same dtype-scaled
numbers (issue 17, item 1).  The tiny variant is analysed at fp32, bf16 and fp8; each file is checked against the
others and against the bf16 counts rescaled by the element width (x2 for fp32, floor /2 for fp8) - report.md's
Runtime section included (issue 14 follow-up, F2)."""

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
        result = run_analysis(options)
        files = report_files(result)
        out[dtype] = {
            "run": result.runtime_run,
            "yaml": yaml.safe_load(files["report.yaml"]),
            "model": json.loads(files["model.json"]),
            "summary": json.loads(files["summary.json"]),
            "validation": json.loads(files["validation.json"]),
            "md": files["report.md"].decode("utf-8"),
            "layers": {k: v.decode("utf-8") for k, v in files.items() if k.startswith("layers/")},
            "runtime_bytes": _runtime_bytes(files["report.md"].decode("utf-8")),
        }
    return out


def _runtime_bytes(md: str) -> dict[str, str]:
    """report.md's Runtime section: the bytes per generated token and each module group's bytes, as printed."""
    section = md.split("## Runtime", 1)[1]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    out = {row[0]: row[1] for row in cells if row[0] == "bytes per generated token"}
    out.update({row[0]: row[2] for row in cells if len(row) == 5 and row[0] != "module group"})
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


def test_the_runtime_section_bytes_scale_with_the_element_width(outputs: dict[str, dict[str, Any]]) -> None:
    """Bytes per generated token and every "Why is decode this slow" group: the bf16 figure x2 at fp32, /2 at fp8
    (each cost floored once by the one rescale; the printed 3 significant digits agree with the exact halving)."""
    shown = {dtype: outputs[dtype]["runtime_bytes"] for dtype in DTYPES}
    assert "bytes per generated token" in shown["bf16"] and len(shown["bf16"]) >= 5
    assert shown["fp32"].keys() == shown["bf16"].keys() == shown["fp8"].keys()
    runs = {dtype: outputs[dtype]["run"] for dtype in DTYPES}
    for dtype, run in runs.items():
        assert shown[dtype]["bytes per generated token"] == fmt_bytes(run.bytes_per_token), dtype
        for group in run.breakdown:
            assert shown[dtype][group.module] == fmt_bytes(group.bytes), (dtype, group.module)
    bf16 = {m.module: m.bytes for m in runs["bf16"].breakdown}
    assert {m.module: m.bytes for m in runs["fp32"].breakdown} == {g: 2 * b for g, b in bf16.items()}
    assert runs["fp32"].bytes_per_token == 2 * runs["bf16"].bytes_per_token
    for m in runs["fp8"].breakdown:
        assert m.bytes == pytest.approx(bf16[m.module] / 2, rel=1e-3), m.module
    assert runs["fp8"].bytes_per_token == pytest.approx(runs["bf16"].bytes_per_token / 2, rel=1e-6)
    assert shown["fp32"] != shown["bf16"] != shown["fp8"]


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
