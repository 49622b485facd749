"""One request's whole journey: options in, one :class:`AnalysisResult` out.

Steps, in order (all in :func:`run_analysis`): resolve the model source and apply the trust decision -> resolve the
workload in the source's terms, the device, dtype, routing and time profile -> trace on the meta device through the
source's driver -> compose the analytic model for the source's kind -> validate (analytic vs traced, node by node)
-> roofline time per node -> memory, capacity and throughput -> compare with a measurement when one is named ->
the ``model.json``/``summary.json`` contracts.  Rendering and publishing files is :mod:`llm_perf_opt.report.files`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from llm_perf_opt.analysis.assemble import build_model_contract, build_summary
from llm_perf_opt.analysis.model_source import (
    analytic_for,
    check_source_attention,
    model_spec,
    provenance_lines,
    resolve_source_workload,
    runtime_config,
    trusted_source,
)
from llm_perf_opt.analysis.options import (
    AnalysisOptions,
    check_attention,
    report_id_for,
    resolve_device,
    resolve_routing,
)
from llm_perf_opt.analysis.prepare import (
    basis_in_progress,
    prepare_batch_basis_later,
    prepare_request,
    waited_for_basis,
)
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.analysis.trace_step import built_model, shapes_seen, traced
from llm_perf_opt.analysis.validation import validation_payload, validation_summary
from llm_perf_opt.analytic import AnalyticTree
from llm_perf_opt.analytic.divergences import divergence_for
from llm_perf_opt.contracts import OperatorCategory
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec
from llm_perf_opt.measure.compare import compare, compare_memory, memory_rows_payload, mismatches
from llm_perf_opt.measure.memory_md import largest_batches
from llm_perf_opt.measure.record import MeasurementError, load_measurement
from llm_perf_opt.perf import (
    DeviceProfile,
    Rates,
    StageTimes,
    capacity_check,
    default_profile,
    footprint_at_dtype,
    load_device_profile,
    throughput,
    time_tree,
)
from llm_perf_opt.perf.memory import ProcessOverhead
from llm_perf_opt.perf.named_profiles import resolve_profile_path
from llm_perf_opt.runtimes import Runtime, get_runtime
from llm_perf_opt.runtimes.bands import trust_line
from llm_perf_opt.runtimes.costs import check_supported
from llm_perf_opt.runtimes.request import RuntimeRun, runtime_run
from llm_perf_opt.tracecache import usable_cache
from llm_perf_opt.tracer.categories import CATEGORIES
from llm_perf_opt.workloads import RoutingModel, get_preset, profile_from_workload

__all__ = ["COUNTED_DTYPE", "Progress", "memory_peak_bytes", "run_analysis"]

COUNTED_DTYPE = "bf16"
"""The dtype the meta trace and the analytic model count bytes in; reports rescale them once to their dtype."""

Progress = Callable[[str], None]
"""A progress sink: one line per step (the CLI prints them on stderr; the service says nothing)."""


def _silent(message: str) -> None:
    """The default progress sink: says nothing."""


def run_analysis(
    options: AnalysisOptions,
    *,
    progress: Progress | None = None,
    use_cache: bool = True,
    prepare_batches: bool = False,
    exits_after: bool = True,
) -> AnalysisResult:
    """Trace, validate and time one workload; every number the reports show comes out of here.

    With ``use_cache`` the trace comes from the trace cache (:mod:`llm_perf_opt.tracecache`, under
    ``$LLM_PERF_OPT_CACHE_DIR``) when the same shapes were traced before, and is stored there otherwise.
    With ``prepare_batches`` too (the command line's ``analyze``, the service's builds), shapes traced for the first
    time get their batch basis built by a background process (:mod:`llm_perf_opt.analysis.prepare`), so a batch
    change is derived.  ``exits_after``: this process exits once the report is written (a command line); otherwise
    (the service's long-lived build workers) a background process not forked from it starts at once rather than once
    it has exited, and a forked one leaves this process's collector as it found it.
    """
    say = progress or _silent
    check_attention(options)
    runtime = get_runtime(options.runtime)
    check_supported(runtime, attention=options.attention, source=options.model)
    source = trusted_source(options.model, options.trust_remote_code)
    check_source_attention(source, options.attention)
    config = source.config
    workload = resolve_source_workload(options, source)
    device, dtype = resolve_device(options)
    routing = resolve_routing(options)
    profile = (
        load_device_profile(resolve_profile_path(options.device_profile))
        if options.device_profile
        else default_profile("eager")
    )
    report_id = report_id_for(options)

    say(f"tracing {source.name} on the meta device: {workload.describe()}")
    attention: Literal["flash", "eager"] = "flash" if options.attention == "flash" else "eager"
    cache = usable_cache() if use_cache else None
    new_shapes = cache is not None and not shapes_seen(
        source, workload, attention=attention, routing=routing, cache=cache
    )
    trace_free = functools.cache(
        functools.partial(
            _trace_free,
            options,
            source,
            workload,
            routing=routing,
            runtime=runtime,
            device=device,
            dtype=dtype,
            profile=profile,
        )
    )
    waited = (
        waited_for_basis(
            source, workload, attention=attention, routing=routing, cache=cache, say=say, meanwhile=trace_free
        )
        if prepare_batches and cache is not None and not new_shapes
        else None
    )
    busy = (  # a background process builds these shapes' basis and did not serve this batch: do not build it again
        waited is None
        and prepare_batches
        and cache is not None
        and not new_shapes
        and basis_in_progress(source, workload, attention=attention, routing=routing, cache=cache)
    )
    starts = (  # new shapes (so they are traced here) whose basis a background process will keep
        prepare_batches
        and new_shapes
        and cache is not None
        and prepare_request(source, workload, attention=attention, routing=routing, cache=cache) is not None
    )
    model = built_model(source, attention=attention) if starts else None  # (the forked process reuses it)
    trace, provenance, hit = waited or traced(
        source, workload, attention=attention, routing=routing, cache=cache, keep_batch_basis=not busy, model=model
    )
    if prepare_batches and new_shapes and not hit and cache is not None:
        started = prepare_batch_basis_later(
            source,
            workload,
            attention=attention,
            routing=routing,
            cache=cache,
            after_this_process=exits_after,
            model=model,
        )
        if started is not None:
            say(f"keeping a batch basis of these shapes in the background (process {started.pid})")
    how = "from the trace cache" if hit else f"traced ({trace.decode_method} decode)"
    say(f"{len(trace.nodes)} nodes {how}; analytic model and validation")
    analytic_counted, run = trace_free()
    memory = footprint_at_dtype(
        weight_bytes=analytic_counted.weight_bytes["root"],
        kv_cache_bytes=analytic_counted.kv_cache_bytes.get("root", 0),
        peak_activation_bytes=memory_peak_bytes(
            traced=trace.root.peak_activation_bytes, closed_form=analytic_counted.peak_activation_bytes.get("root", 0)
        ),
        batch_size=workload.batch_size,
        counted_dtype=COUNTED_DTYPE,
        dtype=dtype,
    )
    # one source of truth for bytes: the trace and the analytic tree at the report's dtype, read by every output
    widths = {"counted": BYTES_PER_ELEMENT[COUNTED_DTYPE], "target": BYTES_PER_ELEMENT[dtype]}
    trace = trace.at_element_bytes(**widths)
    analytic = analytic_counted.at_element_bytes(**widths)
    validation = validation_payload(trace.tree, analytic)
    checked = validation_summary(validation)

    say(f"timing on {device.device_id} ({dtype})")
    rates = Rates.for_device(device, dtype=dtype, profile=profile, counted_dtype=dtype)
    timed = time_tree(trace.tree, rates)
    stages = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=max(workload.max_new_tokens - 1, 0))
    say(f"runtime {runtime.runtime_id}: kernels, launches and graphs{' (text only)' if options.text_only else ''}")
    if not runtime.is_baseline:
        stages = run.stages  # the runtime's kernels time the request; hf-eager keeps the traced tree's time
    capacity = capacity_check(memory, device)
    rate = throughput(stages, B=workload.batch_size, N=workload.max_new_tokens)

    measured, measured_total_ms = _measured(options, stages, workload, device_id=device.device_id, dtype=dtype)
    validation = {**validation, **_measured_memory(options, device)}
    assumptions = (
        _assumptions(options, trace, device, dtype, profile, routing)
        + _runtime_lines(options, run, profile, device, eager_s=timed.total_s)
        + provenance_lines(provenance or {})
    )
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
        predicted_total_s=None if runtime.is_baseline else stages.end_to_end_s,
    )
    summary = build_summary(model=model, trace=trace, timed=timed, notes=notes, runtime=runtime.runtime_id)
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
        analytic=analytic,
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
        runtime_run=run,
    )


def _trace_free(
    options: AnalysisOptions,
    source: Any,
    workload: Any,
    *,
    routing: RoutingModel,
    runtime: Runtime,
    device: DeviceSpec,
    dtype: str,
    profile: DeviceProfile,
) -> tuple[AnalyticTree, RuntimeRun]:
    """What the analysis needs no trace for: the analytic tree (closed forms, at the counted widths) and the runtime's
    run of the workload (its kernels priced from that tree).  :func:`run_analysis` works it out once: while a
    background process traces this workload (:func:`~llm_perf_opt.analysis.prepare.waited_for_basis` calls it
    meanwhile, on this process's own core), or after the trace."""
    analytic = analytic_for(source, workload, attention=options.attention, routing=routing)
    run = runtime_run(
        runtime=runtime,
        config=runtime_config(source, workload),
        workload=workload,
        device=device.device_id,
        dtype=dtype,
        attention=options.attention,
        profile=profile if runtime.is_baseline else None,
        text_only=options.text_only,
        routing=routing,
    )
    return analytic, run


def memory_peak_bytes(*, traced: int, closed_form: int) -> int:
    """The activation peak the memory figures use: the closed form (``analytic.formulas.stage_peaks``, what
    ``sweep`` uses) where validation accepts it on ``root`` (divergence ``peak-activation-stages``: equal to the
    trace, as for every v1 workload), else the traced live set - where the closed forms do not cover the model
    (DeepSeek-OCR-2, whose root closed form is the largest leaf working set, 0.49x the trace)."""
    row = divergence_for("root", "peak_activation_bytes")
    accepted = row is not None and traced > 0 and row.accepts(closed_form / traced)
    return closed_form if accepted else traced


def _runtime_lines(
    options: AnalysisOptions, run: RuntimeRun, profile: Any, device: Any, *, eager_s: float
) -> list[str]:
    """Which runtime and profile made the time, whether the profile was calibrated on this device, and how far the
    time can be trusted (docs/validation-runtimes.md, docs/validation.md)."""
    rt = run.runtime
    calibrated = rt.calibrated_by(profile_device=profile.device_id, device_id=device.device_id)
    where = (
        "the traced tree's time"
        if rt.is_baseline
        else "the runtime's kernel model (stage times, bounds and kernel counts); per-module and per-category "
        "times in model.json, summary.json and report.yaml are the eager op-by-op breakdown (hf-eager, end to end "
        f"{eager_s * 1e3:.1f} ms; summary.json: modules_runtime, modules_total_time_ms) and their shares are of that "
        "total, so one module's eager time can exceed this runtime's whole request"
    )
    text = "; text-only request traced as such (no image, S = 1 BOS + prompt tokens)" if options.text_only else ""
    return [
        f"runtime: {rt.runtime_id} ({rt.description}); time from {where}{text}",
        f"profile: {profile.source}; calibrated on this device: {'yes' if calibrated else 'no'} ({profile.device_id})"
        if rt.is_baseline
        else f"profile: {profile.source}; it times the eager per-module breakdown only (this runtime's kernel model "
        "does not read it)",
        trust_line(rt.runtime_id, calibrated=calibrated, device_id=device.device_id, model=options.model),
    ]


def _categories(categories: Mapping[str, tuple[str, ...]]) -> list[OperatorCategory]:
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
    ] + ([f"batch: {trace.batch_method} ({trace.batch_note})"] if trace.batch_note else [])


def _measured_memory(options: AnalysisOptions, device: DeviceSpec) -> dict[str, Any]:
    """``validation.json`` -> ``memory`` and ``memory_budget`` when ``--measured`` names a measurement with memory:
    predicted vs measured peak bytes per stage (predicted by a trace of what the measurement ran: its dtype and
    decoder attention), and the largest batch of that run that would fit the report device's memory."""
    if options.measured is None:
        return {}
    measurement = load_measurement(Path(options.measured))
    if measurement.memory is None:
        return {}
    # lazy: predicting a measured run's peaks traces it with torch; a warm analyze without --measured stays torch-free
    from llm_perf_opt.measure.predict import predicted_stage_peaks

    rows = compare_memory(predicted_stage_peaks(measurement), measurement)
    overhead = ProcessOverhead()
    predicted, measured = largest_batches(
        rows, measurement, budget_bytes=device.memory_capacity_bytes, overhead=overhead
    )
    budget = {
        "device": device.device_id,
        "budget_bytes": device.memory_capacity_bytes,
        "includes": f"the measured run's weights, B x its highest stage peak per sequence, {overhead.describe()}",
        "largest_batch_predicted": predicted,
        "largest_batch_measured": measured,
    }
    return {"memory": memory_rows_payload(rows), "memory_budget": budget}


def _measured(
    options: AnalysisOptions, stages: StageTimes, workload: Any, *, device_id: str, dtype: str
) -> tuple[dict[str, Any] | None, float | None]:
    """Per-stage predicted vs measured (seconds and ratios) when ``--measured`` names a measurement."""
    if options.measured is None:
        return None, None
    measurement = load_measurement(Path(options.measured))
    found = mismatches(
        measurement,
        model=options.model,
        workload=workload,
        workload_id=options.workload_id,
        device_id=device_id,
        dtype=dtype,
        attention=options.attention,
        routing=options.routing,
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
        "routing": measurement.routing,
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
