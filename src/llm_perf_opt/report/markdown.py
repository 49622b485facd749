"""``report.md``: the human report of one analysis, rendered from an :class:`AnalysisResult` (no recomputation).

Sections, in order: headline, workload, device, time (stages, bounds, throughput), memory, top modules, operator
categories, plots, validation, coverage ledger, assumptions, layer pages.  Deterministic: no dates, no absolute paths,
numbers through :mod:`llm_perf_opt.report.humanize`; the same result always renders the same bytes.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from llm_perf_opt.admission.limits import MAX_BATCH_SIZE
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import (
    fmt_bytes,
    fmt_bytes_apart,
    fmt_count,
    fmt_flops,
    fmt_int,
    fmt_ms,
    fmt_ms_column,
    fmt_rate,
    fmt_share,
    md_table,
    plural,
)
from llm_perf_opt.report.md_analysis import (
    assumptions_section,
    categories_section,
    coverage_section,
    layers_section,
    plots_section,
    top_modules_section,
    validation_section,
)
from llm_perf_opt.report.md_runtime import (
    kernel_note,
    overhead_label,
    runtime_section,
    time_note,
    top_group_fact,
    trust_fact,
)
from llm_perf_opt.report.stage_view import runtime_timed, stage_bound, time_table

__all__ = ["render_report_md", "reproduce_command"]

_STAGE_ROWS = (("vision", "Vision (SAM + CLIP)"), ("projector", "Projector + injection"), ("prefill", "Prefill"))


def render_report_md(result: AnalysisResult) -> str:
    """The whole ``report.md`` text (ends with one newline)."""
    sections = [
        _title(result),
        _workload(result),
        _device(result),
        _time(result),
        runtime_section(result),
        _memory(result),
        top_modules_section(result),
        categories_section(result),
        plots_section(result),
        validation_section(result),
        coverage_section(result),
        assumptions_section(result),
        layers_section(result),
    ]
    text = "\n".join(s.rstrip("\n") + "\n" for s in sections)
    return re.sub(r"\n{3,}", "\n\n", text)  # one blank line between blocks, however the sections end


def reproduce_command(result: AnalysisResult) -> str:
    """The ``llm-perf-opt analyze`` command line that asks for this report (files by name only)."""
    o = result.options
    parts = ["llm-perf-opt analyze", f"--model {o.model}", f"--workload {o.workload_id}"]
    if o.mode is not None:
        parts.append(f"--mode {o.mode}")
    if o.page is not None:
        parts.append(f"--image {o.page[0]}x{o.page[1]}")
    for flag, value in (
        ("--prompt-tokens", o.prompt_tokens),
        ("--max-new-tokens", o.max_new_tokens),
        ("--batch", o.batch_size),
    ):
        if value is not None:
            parts.append(f"{flag} {value}")
    parts += [f"--device {o.device}", f"--dtype {result.dtype}", f"--attention {o.attention}", f"--routing {o.routing}"]
    if o.measured is not None:
        parts.append(f"--measured {PurePath(o.measured).name}")
        if o.allow_mismatch:  # the report was made comparing anyway; without the flag the same line is refused
            parts.append("--allow-mismatch")
    if o.device_profile is not None:
        parts.append(f"--device-profile {PurePath(o.device_profile).name}")
    if o.trust_remote_code:
        parts.append("--trust-remote-code")
    if o.runtime != "hf-eager":
        parts.append(f"--runtime {o.runtime}")
    if o.text_only:
        parts.append("--text-only")
    return " ".join(parts)


def _beyond_the_batch_bound(max_batch: int) -> str:
    """A note when memory allows more pages per forward than ``--batch`` accepts (so the suggestion is not one the
    tool refuses)."""
    return f"; --batch accepts up to {fmt_int(MAX_BATCH_SIZE)}" if max_batch > MAX_BATCH_SIZE else ""


def _largest_that_fits(max_batch: int, item: str) -> str:
    """What does fit, when the asked batch does not: the largest batch, or that not even one does."""
    if max_batch < 1:
        return f"not even one {item} fits"
    return f"largest batch that fits: {fmt_int(max_batch)}{_beyond_the_batch_bound(max_batch)}"


def _title(r: AnalysisResult) -> str:
    w, s, t, cap = r.workload, r.stages, r.throughput, r.capacity
    item = "text-only request" if w.text_only else "page"
    batch = f"a batch of {w.batch_size} {item}s" if w.batch_size > 1 else f"one {item}"
    peak, capacity = fmt_bytes_apart(r.memory.total_bytes, cap.capacity_bytes)
    fits = (
        f"fits the {capacity} device (largest batch {fmt_int(cap.max_batch)}{_beyond_the_batch_bound(cap.max_batch)})"
        if cap.fits
        else f"does **not** fit the {capacity} device ({_largest_that_fits(cap.max_batch, item)})"
    )
    steps = (
        f"{plural(s.decode_steps, 'decode step')} of {fmt_ms(s.tpot_s)} (TPOT)"
        if s.decode_steps
        else "no decode step (the one token comes from prefill)"
    )
    lines = [
        f"# {r.model.model.model_variant} · "
        + ("text only (no image)" if w.text_only else f"{w.mode.name} {w.page_width}x{w.page_height}")
        + f" · {r.device.name}",
        "",
        f"Report `{r.report_id}` · model source {r.model_source} · {r.dtype} · {r.trace.attention} attention · "
        f"routing {r.trace.routing}",
        "",
        f"**End to end {fmt_ms(s.end_to_end_s)}** for {batch} generating {plural(w.max_new_tokens, 'token')}"
        f"{' each' if w.batch_size > 1 else ''}: time to first token {fmt_ms(s.ttft_s)}, then {steps}. "
        + (
            f"Throughput {t.tokens_per_s:,.1f} tokens/s"
            + ("" if w.text_only else f", {t.pages_per_day:,.0f} pages/day")
            + ". "
            if cap.fits
            else "No throughput: this configuration does not fit the device memory. "
        )
        + f"Memory {peak} at the peak: {fits}.",
        "",
        *_key_facts(r),
        "",
        f"Reproduce: `{reproduce_command(r)}`",
        "",
        "Predicted on a roofline of the named device from counts traced on PyTorch's meta device; "
        "no GPU and no weights were used. Units: 1 GB = 1e9 B, 1 TFLOP = 1e12 FLOPs.",
    ]
    return "\n".join(lines)


def _key_facts(r: AnalysisResult) -> list[str]:
    """Three bullets a reader should take away: the dominant stage, what bounds the time, the top module."""
    s = r.stages
    e2e = s.end_to_end_s
    facts = []
    if e2e > 0:
        stages = {"vision": s.vision_s, "projector": s.projector_s, "prefill": s.prefill_s, "decode": s.decode_s}
        big = max(stages, key=lambda k: (stages[k], k))
        facts.append(f"- Largest stage: {big}, {fmt_share(stages[big] / e2e)} of end to end.")
    bound = stage_bound(r, "root")
    if bound is not None and bound.total_s > 0:
        facts.append(
            f"- Bound: compute {fmt_share(bound.compute_s / bound.total_s)}, memory "
            f"{fmt_share(bound.memory_s / bound.total_s)}, {overhead_label(r)} "
            f"{fmt_share(bound.overhead_s / bound.total_s)} ({fmt_int(round(bound.kernels))} kernels{kernel_note(r)})."
        )
    if runtime_timed(r):
        facts.append(top_group_fact(r))
    elif r.summary.top_modules:
        top = r.summary.top_modules[0]
        facts.append(
            f"- Slowest module (own time): `{top.module_id}`, {fmt_ms(top.total_time_ms / 1e3)} "
            f"({fmt_share(top.share_of_model_time)})."
        )
    facts.append(trust_fact(r))
    if r.trace.attention == "eager" and not r.workload.text_only:
        facts.append(_EAGER_VISION_CAVEAT)
    return facts


_EAGER_VISION_CAVEAT = (
    "- **Caveat, eager attention:** the trace also runs SAM's and CLIP's `scaled_dot_product_attention` calls as their "
    "math decomposition (score matrices in memory), while a real run with the decoder in eager mode still calls the "
    "fused SDPA kernel there; the vision stage's time and peak memory are overstated (for a base 1024x1024 fp32 "
    "page the trace peaks at 4.23 GB in vision, the measured run at 0.97 GB: docs/validation.md). For the vision "
    "stage, use `--attention flash`."
)
"""Known limitation (`--attention eager` decomposes every SDPA call, not only the decoder's): said in every eager
report with pages until the trace fuses the encoders' SDPA whatever the decoder runs (the goldens are eager)."""


def _workload(r: AnalysisResult) -> str:
    w = r.workload
    mode = w.mode
    cols, rows = w.grid
    crops = (
        f"{cols} x {rows} (cols x rows): {w.num_crops} crops of {w.crop_size} px"
        if w.num_crops
        else "none (global view only)"
    )
    view = f"{w.global_view_size} px global view" + (f" + {w.crop_size} px crops" if mode.crop_mode else "")
    image = (
        f"{fmt_int(w.image_tokens)} = {w.global_tokens} global + {fmt_int(w.local_tokens)} local"
        if w.local_tokens
        else f"{fmt_int(w.image_tokens)} (global view: {w.global_grid_side} rows x ({w.global_grid_side} + 1 newline) "
        "+ 1 separator)"
    )
    pages = [
        ("page", f"{w.page_width} x {w.page_height} px, {w.num_pages} page(s) per document"),
        ("resolution mode", f"{mode.name}: {view}, crop mode {'on' if mode.crop_mode else 'off'}"),
        ("crop grid", crops),
        ("image tokens per page", image),
    ]
    table = [
        ("workload preset", f"`{r.options.workload_id}`" + ("" if w.profile_id else " (with overrides)")),
        *([("image", "none: a text-only request (no vision or projector stage)")] if w.text_only else pages),
        ("prompt tokens", fmt_int(w.prompt_tokens)),
        (
            "prefill length S",
            f"{fmt_int(w.seq_len)} = 1 BOS + {fmt_int(w.image_tokens)} image + {w.prompt_tokens} prompt",
        ),
        (
            "new tokens N",
            f"{fmt_int(w.max_new_tokens)} (1 from prefill + {fmt_int(w.decode_steps)} decode steps)",
        ),
        ("KV length at the end", f"{fmt_int(w.final_kv_len)} tokens (S + N - 1)"),
        ("batch B", f"{w.batch_size} sequence(s) per forward"),
    ]
    return "## Workload\n\n" + md_table(("", ""), table, align="ll")


def _device(r: AnalysisResult) -> str:
    d, p = r.device, r.profile
    peak = d.matmul_peak_flops(r.dtype)
    effs = ", ".join(f"{c} {e:.2f}" for c, e in p.category_efficiency.items())
    table = [
        ("device", f"{d.name} (`{d.device_id}`), {d.architecture}, {d.sm_count} SMs"),
        (f"matmul peak ({r.dtype}, dense)", fmt_rate(peak)),
        ("vector peak (fp32, non-tensor)", fmt_rate(d.vector_peak_flops)),
        ("memory bandwidth", f"{fmt_bytes(d.memory_bandwidth_bytes_per_s)}/s"),
        ("memory capacity", f"{fmt_bytes(d.memory_capacity_bytes)} ({fmt_int(d.memory_capacity_bytes)} B)"),
        ("ridge point", f"{peak / d.memory_bandwidth_bytes_per_s:,.0f} FLOP/B (matmul peak / bandwidth)"),
        ("source", f"{d.source} ({d.source_date})"),
        ("efficiencies", f"compute: {effs}; memory {p.memory_efficiency:.2f}"),
        ("per-kernel overhead", f"{p.overhead_note() or fmt_ms(p.kernel_overhead_s)} ({p.source})"),
    ]
    return "## Device\n\n" + md_table(("", ""), table, align="ll")


def _stage_row(r: AnalysisResult, stage: str, label: str, seconds: float) -> tuple[str, ...]:
    e2e = r.stages.end_to_end_s
    node, bound = r.trace.nodes.get(stage), stage_bound(r, stage)
    flops = fmt_flops(node.cost.total_flops) if node else "-"
    nbytes = fmt_bytes(bound.bytes) if bound else "-"
    kernels = fmt_count(bound.kernels) if bound else "-"
    if bound and bound.total_s > 0:
        split = (
            f"{fmt_share(bound.compute_s / bound.total_s)} / {fmt_share(bound.memory_s / bound.total_s)}"
            f" / {fmt_share(bound.overhead_s / bound.total_s)}"
        )
    else:
        split = "-"
    return (label, fmt_ms(seconds), fmt_share(seconds / e2e) if e2e else "-", flops, nbytes, kernels, split)


def _time_row(r: AnalysisResult, row: str, seconds: float) -> tuple[str, ...]:
    """The Time table's row ``row`` (a key of :func:`~llm_perf_opt.report.stage_view.time_table`)."""
    s = r.stages
    if row == "ttft":
        share = fmt_share(seconds / s.end_to_end_s) if s.end_to_end_s else "-"
        return ("**Time to first token (TTFT)**", f"**{fmt_ms(seconds)}**", share, "", "", "", "")
    if row == "tpot":
        return ("Time per output token (TPOT)", fmt_ms(seconds), "", "", "", "", "mean decode step")
    labels = {
        **dict(_STAGE_ROWS),
        "decode": f"Decode, {plural(s.decode_steps, 'step')}",
        "other": "Other (outside the stages)",
        "end_to_end": "**End to end**",
    }
    return _stage_row(r, "root" if row == "end_to_end" else row, labels[row], seconds)


def _uniform_times(rows: list[tuple[str, ...]], seconds: list[float]) -> list[tuple[str, ...]]:
    """The rows with their time column (index 1) in one unit and one format (:func:`fmt_ms_column`)."""
    out = []
    for row, text in zip(rows, fmt_ms_column(seconds), strict=True):
        out.append((row[0], f"**{text}**" if row[1].startswith("**") else text, *row[2:]))
    return out


def _time(r: AnalysisResult) -> str:
    column = time_table(r)
    rows = _uniform_times([_time_row(r, row, seconds) for row, seconds in column], [seconds for _, seconds in column])
    header = ("stage", "time", "share", "FLOPs", "bytes moved", "kernels", "compute / memory / overhead")
    throughput = _throughput_table(r)
    parts = [
        "## Time\n",
        md_table(header, rows),
        "",
        time_note(r),
        "",
        "### Throughput (static batching, batches back to back)\n",
        throughput,
    ]
    if r.measured:
        parts += ["### Predicted vs measured\n", _measured_table(r)]
    return "\n".join(parts)


def _throughput_table(r: AnalysisResult) -> str:
    """The static-batching rates at the analysed batch; none for a configuration that does not fit, and no page rate
    for a text-only request (it reads no page)."""
    if not r.capacity.fits:
        return "None: this configuration does not fit the device memory (see Memory)."
    t, w = r.throughput, r.workload
    no_page = "- (text only, no page)"
    return md_table(
        ("batch", "tokens/s (end to end)", "tokens/s (decode)", "pages/s", "pages/day"),
        [
            (
                str(t.batch_size),
                f"{t.tokens_per_s:,.1f}",
                f"{t.decode_tokens_per_s:,.1f}" if r.stages.decode_steps else "- (no decode step)",
                no_page if w.text_only else f"{t.pages_per_s:,.3f}",
                no_page if w.text_only else f"{t.pages_per_day:,.0f}",
            )
        ],
    )


def _measured_table(r: AnalysisResult) -> str:
    """Per-stage predicted vs measured (the pipeline's ``measured`` payload: run id, device, stage rows)."""
    measured = r.measured or {}
    stages = [row for row in measured.get("stages", []) if isinstance(row, dict)]
    head = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in measured.items() if not isinstance(v, list | dict))
    keys: list[str] = []
    for row in stages:
        keys += [str(k) for k in row if str(k) not in keys]
    table = md_table(keys, [[_plain(row.get(k)) for k in keys] for row in stages]) if stages else ""
    flagged = [str(x) for x in measured.get("mismatches", [])]
    warning = (
        "**Warning: this measurement does not match the prediction** (compared with `--allow-mismatch`): "
        + "; ".join(flagged)
        + ". The ratios below compare different configurations.\n\n"
        if flagged
        else ""
    )
    return warning + (f"Measurement: {head}.\n\n" if head else "") + table


def _serving_memory_note(r: AnalysisResult) -> str:
    """A serving runtime does not hold the HF footprint this section sizes: say so, and where its memory is modelled."""
    run = r.runtime_run
    if run is None or not run.runtime.chunked_prefill:
        return ""
    return (
        f" **These figures are the HF eager footprint, not {run.runtime.runtime_id}'s:** the whole batch prefilled at "
        f"once with logits over every position. {run.runtime.runtime_id} prefills in chunks of its token budget and "
        "keeps the last position's logits, so its activation peak does not grow with the batch; its KV pool and the "
        f"batch they run are modelled by `llm-perf-opt simulate --runtime {run.runtime.runtime_id}` (docs/serving.md)."
    )


def _plain(value: object) -> str:
    """A measured-table cell: 4 significant digits, but whole numbers from 1,000 up (never ``1.03e+04``)."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


def _memory(r: AnalysisResult) -> str:
    m, c, w = r.memory, r.capacity, r.workload
    tokens = w.final_kv_len * w.batch_size
    per_token = m.kv_cache_bytes / tokens if tokens else 0.0
    per_token_text = fmt_int(int(per_token)) if float(per_token).is_integer() else f"{per_token:,.1f}"
    rows = [
        ("weights", fmt_bytes(m.weights_bytes), fmt_int(m.weights_bytes), "all parameters, shared by the batch"),
        (
            "KV cache at the final length",
            fmt_bytes(m.kv_cache_bytes),
            fmt_int(m.kv_cache_bytes),
            f"{fmt_int(w.final_kv_len)} tokens x {w.batch_size} sequence(s) x {per_token_text} B per token, "
            "counted once",
        ),
        (
            "peak activations",
            fmt_bytes(m.peak_activation_bytes),
            fmt_int(m.peak_activation_bytes),
            _peak_note(r),
        ),
        ("**total**", f"**{fmt_bytes(m.total_bytes)}**", fmt_int(m.total_bytes), "weights + KV + peak activations"),
        ("device capacity", fmt_bytes(c.capacity_bytes), fmt_int(c.capacity_bytes), r.device.device_id),
        ("headroom", fmt_bytes(c.headroom_bytes), fmt_int(c.headroom_bytes), "fits" if c.fits else "does NOT fit"),
    ]
    max_batch = (
        f"Largest batch that fits: **{fmt_int(c.max_batch)}** (capacity minus weights, over KV + activations per "
        "sequence). Left out: CUDA context, allocator fragmentation and workspaces."
    ) + _serving_memory_note(r)
    text = "## Memory\n\n" + md_table(("", "size", "bytes", "note"), rows, align="lrrl") + "\n" + max_batch
    measured = r.validation.get("memory")
    if measured:
        text += "\n\n" + _measured_memory_table(measured)
    budget = r.validation.get("memory_budget")
    if budget:
        text += (
            f"\n\nLargest batch of the measured run that fits {budget['device']} "
            f"({fmt_bytes(budget['budget_bytes'])}): predicted **{fmt_int(budget['largest_batch_predicted'])}**, "
            f"measured **{fmt_int(budget['largest_batch_measured'])}** ({budget['includes']})."
        )
    return text


def _peak_note(r: AnalysisResult) -> str:
    """Which activation peak the memory figures use: the closed form (equal to the trace) or, where the closed forms
    do not cover the model, the traced live set (``analysis.pipeline.memory_peak_bytes``)."""
    traced = r.trace.root.peak_activation_bytes
    nodes: list[dict[str, Any]] = list(r.validation.get("nodes", []))
    root = next((n for n in nodes if n.get("module_id") == "root"), {})
    closed = (root.get("analytic") or {}).get("peak_activation_bytes")
    if r.memory.peak_activation_bytes != traced or closed is None or closed == traced:
        return (
            "largest live set at any point (a max, not a sum): the closed-form estimate `sweep` uses too; the traced "
            f"live set peaks at {fmt_bytes(traced)}"
        )
    return (
        "largest live set at any point (a max, not a sum): the traced live set - the closed forms do not cover this "
        f"model's stage peaks (they give {fmt_bytes(int(closed))}, {closed / traced:.2f}x; validation flags it), so "
        "the total, the fit and the largest batch use the trace"
    )


def _measured_memory_table(rows: list[dict[str, object]]) -> str:
    """``validation.json`` -> ``memory``: predicted vs measured peak per stage (bytes above the weights)."""
    body = [
        (
            str(row["stage"]),
            fmt_bytes(int(str(row["predicted_peak_bytes"]))),
            fmt_bytes(int(str(row["measured_peak_bytes"]))),
            "-" if row["rel_error"] is None else f"{float(str(row['rel_error'])):+.1%}",
        )
        for row in rows
    ]
    return (
        "### Peak memory: predicted vs measured\n\n"
        "Bytes above the resident weights at each stage's peak of the `--measured` run (its inputs, the KV cache at "
        "its final length and the live activations), predicted by a trace in the measured dtype and decoder "
        "attention.\n\n" + md_table(("stage", "predicted", "measured", "error"), body, align="lrrr")
    )
