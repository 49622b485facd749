"""``compare.md`` / ``compare.json``: one workload on several devices, side by side (rendering only)."""

from __future__ import annotations

from typing import Any

from llm_perf_opt.analysis.assemble import rounded
from llm_perf_opt.analysis.compare import DeviceComparison, DeviceTiming
from llm_perf_opt.report.humanize import fmt_bytes, fmt_int, fmt_ms_column, fmt_rate, fmt_share, md_table, plural

__all__ = ["render_compare_json", "render_compare_md"]

_TIMES = (
    ("vision", "vision_s"),
    ("projector", "projector_s"),
    ("prefill", "prefill_s"),
    ("**TTFT**", "ttft_s"),
    ("TPOT", "tpot_s"),
    ("decode (all steps)", "decode_s"),
    ("**end to end**", "end_to_end_s"),
)


def _bounds(column: DeviceTiming) -> str:
    if column.runtime_run is not None:
        bound = column.runtime_run.bounds["root"]
        parts, total = (bound.compute_s, bound.memory_s, bound.overhead_s), bound.total_s
    else:
        root = column.timed.nodes.get("root")
        if root is None:
            return "-"
        parts, total = (root.compute_bound_s, root.memory_bound_s, root.overhead_s), root.total_s
    if total <= 0:
        return "-"
    return " / ".join(fmt_share(x / total) for x in parts)


def render_compare_md(comparison: DeviceComparison) -> str:
    """A Markdown page: the workload, then one row per quantity and one column per device."""
    r, cols = comparison.result, comparison.columns
    w = r.workload
    header = ("", *(f"{c.device.name} (`{c.device.device_id}`)" for c in cols))
    rows: list[tuple[str, ...]] = [
        ("matmul peak", *(fmt_rate(c.device.matmul_peak_flops(r.dtype)) for c in cols)),
        ("memory bandwidth", *(f"{fmt_bytes(c.device.memory_bandwidth_bytes_per_s)}/s" for c in cols)),
        ("memory capacity", *(fmt_bytes(c.device.memory_capacity_bytes) for c in cols)),
    ]
    for label, attr in _TIMES:
        if attr in ("tpot_s", "decode_s") and not w.decode_steps:
            continue
        texts = fmt_ms_column([getattr(c.stages, attr) for c in cols])
        rows.append((label, *(f"**{t}**" if label.startswith("**") else t for t in texts)))
    rows += [
        ("compute / memory / overhead", *(_bounds(c) for c in cols)),
        ("tokens/s", *(f"{c.throughput.tokens_per_s:,.1f}" if c.capacity.fits else "- (does not fit)" for c in cols)),
        ("pages/day", *(f"{c.throughput.pages_per_day:,.0f}" if c.capacity.fits else "- (does not fit)" for c in cols)),
        ("memory at the peak", *(fmt_bytes(r.memory.total_bytes) for _ in cols)),
        ("fits", *("yes" if c.capacity.fits else "**no**" for c in cols)),
        ("largest batch", *(fmt_int(c.capacity.max_batch) for c in cols)),
        ("profile", *(c.profile_source for c in cols)),
    ]
    fitting = [c for c in cols if c.capacity.fits]
    best = min(fitting, key=lambda c: (c.stages.end_to_end_s, c.device.device_id)) if fitting else None
    verdict = (
        f"Fastest end to end: **{best.device.name}** ({fmt_ms_column([best.stages.end_to_end_s])[0]})."
        if best
        else "No device fits this configuration."
    )
    lines = [
        f"# {r.model.model.model_variant} on {len(cols)} devices",
        "",
        f"{w.describe()}, generating {plural(w.max_new_tokens, 'token')} per page, {r.dtype}, "
        f"{r.trace.attention} attention, routing {r.trace.routing}. Counts traced once (report `{r.report_id}`); "
        "each device times them on its own dense peaks and bandwidth.",
        "",
        f"Runtime: {comparison.runtime}{' (text only: no page)' if r.options.text_only else ''}; {comparison.trust}.",
        "",
        verdict,
        "",
        md_table(header, rows, align="l" + "r" * len(cols)),
    ]
    lines += [f"- skipped: {s}" for s in comparison.skipped]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_compare_json(comparison: DeviceComparison) -> dict[str, Any]:
    """The same numbers as plain data (ms, bytes), one entry per device."""
    r = comparison.result
    return {
        "report_id": r.report_id,
        "workload": r.workload.describe(),
        "dtype": r.dtype,
        "attention": r.trace.attention,
        "runtime": comparison.runtime,
        "text_only": r.options.text_only,
        "trust": comparison.trust,
        "memory_bytes": r.memory.total_bytes,
        "devices": [
            {
                "device_id": c.device.device_id,
                "stages_ms": {k: rounded(v) for k, v in c.stages.as_ms().items()},
                "tokens_per_s": rounded(c.throughput.tokens_per_s) if c.capacity.fits else None,
                "pages_per_day": rounded(c.throughput.pages_per_day) if c.capacity.fits else None,
                "fits": c.capacity.fits,
                "max_batch": c.capacity.max_batch,
                "profile": c.profile_source,
            }
            for c in comparison.columns
        ],
        "skipped": list(comparison.skipped),
    }
