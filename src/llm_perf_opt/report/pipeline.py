"""The one library call behind ``analyze`` and the HTTP service: options in, an :class:`AnalysisResult` and files out.

Steps: resolve the model source, workload, device and routing -> trace on the meta device -> analytic model ->
validation (analytic vs traced, node by node) -> roofline time per node -> memory and throughput -> contracts ->
rendered files, published atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from attrs import asdict

from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest, OperatorCategory
from llm_perf_opt.contracts.converter import to_json
from llm_perf_opt.core import staged_directory
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import BYTES_PER_ELEMENT
from llm_perf_opt.perf import (
    Rates,
    StageTimes,
    capacity_check,
    default_profile,
    footprint_at_dtype,
    load_device_profile,
    throughput,
    time_tree,
    tree_from_nodes,
)
from llm_perf_opt.report.assemble import build_model_contract, build_summary
from llm_perf_opt.report.model_source import model_spec, provenance_lines
from llm_perf_opt.report.options import (
    AnalysisOptions,
    check_attention,
    default_attention,
    report_id_for,
    resolve_device,
    resolve_routing,
)
from llm_perf_opt.report.result import AnalysisResult
from llm_perf_opt.workloads import get_preset, profile_from_workload

__all__ = [
    "MEASUREMENTS_ENV",
    "REPORT_FILES",
    "Progress",
    "build_report_files",
    "options_from_request",
    "publish_files",
    "report_files",
    "report_id_for",
    "run_analysis",
    "write_report",
]

REPORT_FILES = ("report.md", "model.json", "options.json")
"""Files that mark a folder as an earlier report (written before the output marker existed): ``--out`` may
replace such a folder whole."""

COUNTED_DTYPE = "bf16"
"""The dtype the meta trace and the analytic model count bytes in; reports rescale them once to their dtype."""

MEASUREMENTS_ENV = "LLM_PERF_OPT_MEASUREMENTS"
"""Folder of measurement JSON files that a request's ``profile_run_id`` is looked up in (default
``benchmarks/measurements`` under the working directory)."""

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    """The default progress sink: says nothing."""


def options_from_request(request: DeepSeekOCRAnalyticRequest, *, measurements: Path | None = None) -> AnalysisOptions:
    """The HTTP request as analysis options: ``model_variant`` names the model source, extensions override.

    ``profile_run_id`` names a measurement (by its ``run_id``) in ``measurements`` (or ``$LLM_PERF_OPT_MEASUREMENTS``,
    or ``benchmarks/measurements``) that the report is compared against.
    """
    if (request.page_width is None) != (request.page_height is None):
        raise UserError("set both page_width and page_height, or neither")
    page = None if request.page_width is None else (request.page_width, request.page_height or 0)
    defaults = AnalysisOptions()
    measured = None
    if request.profile_run_id is not None:
        measured = str(_measurement_file(request.profile_run_id, measurements))
    return AnalysisOptions(
        model=request.model_variant,
        workload_id=request.workload_profile_id,
        mode=request.mode,
        page=page,
        prompt_tokens=request.prompt_tokens,
        max_new_tokens=request.max_new_tokens,
        batch_size=request.batch_size,
        device=request.device or defaults.device,
        dtype=request.dtype or defaults.dtype,
        attention=request.attention or default_attention(request.model_variant),
        routing=request.routing or defaults.routing,
        measured=measured,
    )


def _measurement_file(run_id: str, folder: Path | None) -> Path:
    """The measurement file whose ``run_id`` is ``run_id`` (a one-line error naming the folder when none is)."""
    from llm_perf_opt.measure.record import load_measurement

    root = folder or Path(os.environ.get(MEASUREMENTS_ENV, "benchmarks/measurements"))
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            if load_measurement(path).run_id == run_id:
                return path
        except UserError:
            continue
    raise UserError(
        f"no measurement with run id {run_id!r} in {root}; run `llm-perf-opt measure --out {root}/<name>.json` "
        f"or set {MEASUREMENTS_ENV} to the folder that holds it"
    )


def run_analysis(options: AnalysisOptions, *, progress: Progress | None = None) -> AnalysisResult:
    """Trace, validate and time one workload; every number the reports show comes out of here."""
    say = progress or _silent
    check_attention(options)
    from llm_perf_opt.report.model_source import (
        analytic_for,
        check_source_attention,
        resolve_source_workload,
        trusted_source,
    )
    from llm_perf_opt.report.validation import validation_payload, validation_summary
    from llm_perf_opt.tracer.trace import trace_with_driver

    source = trusted_source(options.model, options.trust_remote_code)
    check_source_attention(source, options.attention)
    config = source.config
    workload = resolve_source_workload(options, source)
    device, dtype = resolve_device(options)
    routing = resolve_routing(options)
    profile = load_device_profile(options.device_profile) if options.device_profile else default_profile("eager")
    report_id = report_id_for(options)

    say(f"tracing {source.name} on the meta device: {workload.describe()}")
    attention: Literal["flash", "eager"] = "flash" if options.attention == "flash" else "eager"
    trace, driver = trace_with_driver(source, workload, attention=attention, routing=routing)
    provenance_of = getattr(source, "provenance", None)
    provenance = provenance_of(driver).as_dict() if callable(provenance_of) else None
    say(f"traced {len(trace.nodes)} nodes ({trace.decode_method} decode); analytic model and validation")
    analytic_counted = analytic_for(source, workload, attention=options.attention, routing=routing)
    memory = footprint_at_dtype(
        weight_bytes=analytic_counted.weight_bytes["root"],
        kv_cache_bytes=analytic_counted.kv_cache_bytes.get("root", 0),
        peak_activation_bytes=analytic_counted.peak_activation_bytes.get("root", 0),
        batch_size=workload.batch_size,
        counted_dtype=COUNTED_DTYPE,
        dtype=dtype,
    )
    # one source of truth for bytes: the trace and the analytic tree at the report's dtype, read by every output
    widths = {"counted": BYTES_PER_ELEMENT[COUNTED_DTYPE], "target": BYTES_PER_ELEMENT[dtype]}
    trace = trace.at_element_bytes(**widths)
    analytic = analytic_counted.at_element_bytes(**widths)
    validation = validation_payload(trace, analytic)
    checked = validation_summary(validation)

    say(f"timing on {device.device_id} ({dtype})")
    rates = Rates.for_device(device, dtype=dtype, profile=profile, counted_dtype=dtype)
    timed = time_tree(tree_from_nodes(trace.nodes.values()), rates)
    stages = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=max(workload.max_new_tokens - 1, 0))
    capacity = capacity_check(memory, device)
    rate = throughput(stages, B=workload.batch_size, N=workload.max_new_tokens)

    measured, measured_total_ms = _measured(options, stages, workload, device_id=device.device_id, dtype=dtype)
    assumptions = _assumptions(options, trace, device, dtype, profile, routing) + provenance_lines(provenance or {})
    notes = " | ".join(assumptions)
    profile_contract = profile_from_workload(
        workload,
        profile_id=workload.profile_id or f"{options.workload_id}+overrides",
        description=_workload_description(options, workload),
        doc_kind=get_preset(options.workload_id).doc_kind,
    )
    model = build_model_contract(
        report_id=report_id,
        trace=trace,
        timed=timed,
        model_spec=model_spec(source, provenance),
        workload=profile_contract,
        categories=_categories(trace.categories),
        profile_run_id=None,
        measured_total_ms=measured_total_ms,
        notes=notes,
    )
    summary = build_summary(model=model, trace=trace, timed=timed, notes=notes)
    return AnalysisResult(
        options=options,
        report_id=report_id,
        model_source=source.name,
        config=config,
        workload=workload,
        device=device,
        dtype=dtype,
        routing=routing,
        profile=profile,
        trace=trace,
        analytic=dict(analytic.items()),
        validation=validation,
        validation_summary=checked,
        timed=timed,
        stages=stages,
        memory=memory,
        capacity=capacity,
        throughput=rate,
        model=model,
        summary=summary,
        measured=measured,
        assumptions=tuple(assumptions),
        provenance=provenance,
    )


def report_files(result: AnalysisResult) -> dict[str, bytes]:
    """Every output file of one analysis, by relative path (deterministic bytes)."""
    from llm_perf_opt.report.layers import render_layer_pages
    from llm_perf_opt.report.markdown import render_report_md
    from llm_perf_opt.report.plots import render_plots
    from llm_perf_opt.report.yaml_out import render_report_yaml

    files: dict[str, bytes] = {
        "options.json": _json_bytes(_options_payload(result.options)),
        "model.json": to_json(result.model).encode("utf-8"),
        "summary.json": to_json(result.summary).encode("utf-8"),
        "validation.json": _json_bytes(result.validation),
        "report.yaml": render_report_yaml(result).encode("utf-8"),
        "report.md": render_report_md(result).encode("utf-8"),
    }
    files.update(render_plots(result))
    files.update({path: text.encode("utf-8") for path, text in render_layer_pages(result).items()})
    return files


def build_report_files(options: AnalysisOptions, *, progress: Progress | None = None) -> dict[str, bytes]:
    """:func:`run_analysis` then :func:`report_files` (what the HTTP service stores)."""
    return report_files(run_analysis(options, progress=progress))


def write_report(result: AnalysisResult, out_dir: Path, *, progress: Progress | None = None) -> dict[str, bytes]:
    """Render and publish into ``out_dir``: every file appears complete or not at all."""
    say = progress or _silent
    files = report_files(result)
    publish_files(files, out_dir)
    say(f"wrote {len(files)} files to {out_dir}")
    return files


def publish_files(files: Mapping[str, bytes], out_dir: Path) -> None:
    """Write ``files`` (relative path -> bytes) into a fresh staging folder that then replaces ``out_dir`` whole
    (nothing stale survives); an OSError is one line."""
    try:
        with staged_directory(out_dir, recognise=REPORT_FILES) as stage:
            for rel, data in files.items():
                target = stage / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write report to {out_dir}: {exc.strerror or exc}; choose another --out") from None


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _options_payload(options: AnalysisOptions) -> dict[str, Any]:
    data = asdict(options, recurse=False)
    data["page"] = list(options.page) if options.page else None
    return data


def _categories(categories: Mapping[str, tuple[str, ...]]) -> list[OperatorCategory]:
    from llm_perf_opt.tracer.categories import CATEGORIES

    specs = {spec.category_id: spec for spec in CATEGORIES}
    return [
        OperatorCategory(
            category_id=cid,
            display_name=specs[cid].display_name if cid in specs else cid,
            description=specs[cid].description if cid in specs else "",
            match_classes=list(classes),
        )
        for cid, classes in categories.items()
    ]


def _workload_description(options: AnalysisOptions, workload: Any) -> str:
    text = str(workload.describe())
    return text if workload.profile_id else f"{options.workload_id} with overrides: {text}"


def _assumptions(
    options: AnalysisOptions, trace: Any, device: Any, dtype: str, profile: Any, routing: Any
) -> list[str]:
    peak = device.matmul_peak_flops(dtype)
    kernel = (
        "flash: fused SDPA, causal-effective products, no score materialisation"
        if options.attention == "flash"
        else "eager: explicit matmuls and softmax, dense products, scores materialised"
    )
    effs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(profile.category_efficiency.items()))
    note = profile.overhead_note()
    overhead = f"; {note}" if note else f" + {profile.kernel_overhead_s * 1e6:.1f} us per kernel"
    return [
        "FLOPs: 2 per multiply-accumulate; matmul (tensor-core) and vector FLOPs counted separately",
        f"attention kernel: {kernel}",
        f"MoE routing: {routing.describe()}",
        f"device: {device.name} ({device.device_id}), dense {dtype} peak {peak / 1e12:.1f} TFLOP/s, "
        f"{device.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s, {device.memory_capacity_bytes / 1e9:.0f} GB; "
        f"source: {device.source} ({device.source_date})",
        f"time: per kernel group max(compute at category efficiency, bytes at memory efficiency "
        f"{profile.memory_efficiency:.2f}){overhead}; efficiencies: {effs}; profile: {profile.source}",
        f"bytes: eager op-level traffic counted on the meta device in {COUNTED_DTYPE}, every byte count (time, "
        f"tables, memory) rescaled once to {BYTES_PER_ELEMENT[dtype]} B per element for {dtype}; an upper bound "
        "for fused kernels",
        f"decode: {trace.decode_method} ({trace.decode_note})",
    ]


def _measured(
    options: AnalysisOptions, stages: StageTimes, workload: Any, *, device_id: str, dtype: str
) -> tuple[dict[str, Any] | None, float | None]:
    """Per-stage predicted vs measured (seconds and ratios) when ``--measured`` names a measurement."""
    if options.measured is None:
        return None, None
    from llm_perf_opt.measure.compare import compare, mismatches
    from llm_perf_opt.measure.record import MeasurementError, load_measurement

    measurement = load_measurement(Path(options.measured))
    found = mismatches(
        measurement,
        model=options.model,
        workload=workload,
        workload_id=options.workload_id,
        device_id=device_id,
        dtype=dtype,
        attention=options.attention,
    )
    if found and not options.allow_mismatch:
        raise MeasurementError(
            f"--measured {measurement.run_id} does not match the prediction ({'; '.join(found)}); measure the same "
            "configuration, or pass --allow-mismatch to compare anyway (the report then flags it)"
        )
    predicted = {
        "vision": stages.vision_s,
        "projector": stages.projector_s,
        "prefill": stages.prefill_s,
        "decode": stages.decode_s,
        "other": stages.other_s,
    }
    try:
        comparison = compare(predicted, measurement)
    except ValueError as exc:
        raise MeasurementError(f"--measured {measurement.run_id} cannot be compared: {exc}") from None
    payload: dict[str, Any] = {
        "run_id": comparison.run_id,
        "device": measurement.device.name,
        "mismatches": list(found),
        "stages": [
            {
                "stage": row.stage,
                "predicted_ms": row.predicted_s * 1e3,
                "measured_ms": row.measured_s * 1e3,
                "ratio": row.ratio,
            }
            for row in comparison.rows
        ],
    }
    return payload, comparison.measured_total_time_ms
