"""The analysis sections of ``report.md``: top modules, categories, plots, validation, coverage, assumptions, layers.

Split from :mod:`llm_perf_opt.report.markdown` (which renders the headline, workload, device, time and memory) to
keep each module small.  Every number comes from the :class:`AnalysisResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import (
    fmt_bytes,
    fmt_count,
    fmt_flops,
    fmt_int,
    fmt_ms,
    fmt_ms_column,
    fmt_share,
    md_table,
)
from llm_perf_opt.report.layers import layer_classes, layer_summary
from llm_perf_opt.report.stage_view import eager_note, runtime_timed

__all__ = [
    "PLOTS",
    "assumptions_section",
    "categories_section",
    "coverage_section",
    "layers_section",
    "plots_section",
    "short_class",
    "top_modules_section",
    "validation_section",
]

PLOTS: tuple[tuple[str, str], ...] = (
    ("stage_times", "Predicted time per stage, split by what bounds it"),
    ("category_shares", "Share of time, FLOPs and bytes per operator category"),
    ("roofline", "Roofline of the heaviest modules on this device"),
)
"""(file stem under ``plots/``, caption)."""

_LIST_LIMIT = 20
_METRICS = ("matmul_flops", "vector_flops", "bytes_read", "bytes_written")


def short_class(qualified: str) -> str:
    """``torch.nn.modules.linear.Linear`` -> ``Linear``."""
    return qualified.rsplit(".", 1)[-1]


def top_modules_section(r: AnalysisResult) -> str:
    rows = []
    times = fmt_ms_column([m.total_time_ms / 1e3 for m in r.summary.top_modules])
    for rank, m in enumerate(r.summary.top_modules, 1):
        node = r.trace.nodes.get(m.module_id)
        cls = short_class(node.qualified_class_name) if node else "-"
        rows.append(
            (
                str(rank),
                f"`{m.module_id}`",
                cls,
                m.stage,
                times[rank - 1],
                fmt_share(m.share_of_model_time),
                fmt_flops(m.total_flops_tflops * 1e12),
                fmt_bytes(m.memory_activations_gb * 1e9),
            )
        )
    header = ("#", "module", "class", "stage", "own time", "share", "own FLOPs", "peak activations")
    return (
        "## Where the time goes: top modules\n\n"
        + _labelled(r)
        + "Ranked by *own* time (ops run directly in the module; a parent never hides its children). "
        "Grouped ids such as `layers.{1..11}` are totals over every member and every call.\n\n"
        + md_table(header, rows, align="rllrrrrr")
    )


def _labelled(r: AnalysisResult) -> str:
    """The eager-breakdown label (:func:`~llm_perf_opt.report.stage_view.eager_note`) as a paragraph, or ''."""
    note = eager_note(r)
    return f"{note}\n\n" if note else ""


def categories_section(r: AnalysisResult) -> str:
    root = r.trace.root
    times = r.timed.nodes["root"].by_category_s
    total_t = sum(times.values())
    total_f = root.cost.total_flops
    total_b = root.cost.total_bytes
    names = _display_names(r)
    cats = sorted(set(root.by_category) | set(times), key=lambda c: (-times.get(c, 0.0), c))
    rows = []
    time_texts = fmt_ms_column([times.get(cat, 0.0) for cat in cats])
    for index, cat in enumerate(cats):
        cost = root.by_category.get(cat)
        flops = cost.total_flops if cost else 0
        nbytes = cost.total_bytes if cost else 0
        sec = times.get(cat, 0.0)
        rows.append(
            (
                names.get(cat, cat),
                time_texts[index],
                fmt_share(sec / total_t) if total_t else "-",
                fmt_flops(flops),
                fmt_share(flops / total_f) if total_f else "-",
                fmt_bytes(nbytes),
                fmt_share(nbytes / total_b) if total_b else "-",
                fmt_count(cost.kernels) if cost else "0",
            )
        )
    header = ("category", "time", "% time", "FLOPs", "% FLOPs", "bytes", "% bytes", "kernels")
    other = r.trace.other_flops_share()
    return (
        "## Operator categories\n\n"
        + _labelled(r)
        + md_table(header, rows)
        + f"\nFLOPs in the `other` category: {fmt_share(other)} of the total. "
        "Each op belongs to the category of the innermost module it runs in (an op run directly in a container "
        "falls back to its op family).\n"
    )


def _display_names(r: AnalysisResult) -> dict[str, str]:
    return {c.category_id: c.display_name for c in r.model.operator_categories}


_EAGER_BREAKDOWN = {
    "category_shares": " (time: the eager op-by-op breakdown)",
    "roofline": " (the eager op-by-op breakdown)",
}
"""What a figure's caption adds when a serving runtime timed the request: these two figures still show the traced
ops' eager times (the runtime's kernel model times stages, not modules or categories), as their titles say."""


def plots_section(r: AnalysisResult) -> str:
    parts = ["## Plots\n"]
    for stem, caption in PLOTS:
        if runtime_timed(r):
            caption += _EAGER_BREAKDOWN.get(stem, "")
        parts.append(f"![{caption}](plots/{stem}.svg)\n\n{caption}.\n")
    return "\n".join(parts)


def _validation_nodes(r: AnalysisResult) -> list[Mapping[str, Any]]:
    nodes = r.validation.get("nodes", [])
    return [n for n in nodes if isinstance(n, Mapping)]


def _worst(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[float, str, str, Mapping[str, Any]]]:
    """(|rel error|, module id, metric, node) for every node's largest error, largest first."""
    worst = []
    for n in nodes:
        rel = n.get("rel_error") or {}
        if not rel:
            continue
        metric = max(sorted(rel), key=lambda k: abs(float(rel[k] or 0.0)))
        worst.append((abs(float(rel[metric] or 0.0)), str(n.get("module_id")), metric, n))
    return sorted(worst, key=lambda item: (-item[0], item[1]))


def _validation_headline(r: AnalysisResult, nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Status and counts from the validation summary (computed from the nodes where the summary lacks them)."""
    v = r.validation_summary
    traced_and_analytic = [n for n in nodes if n.get("traced") and n.get("analytic")]
    exact = sum(1 for n in traced_and_analytic if n["traced"].get("matmul_flops") == n["analytic"].get("matmul_flops"))
    compared = int(v.get("nodes_compared", len(traced_and_analytic)))
    lines = []
    if "status" in v:
        tolerance = v.get("tolerance")
        within = f" (other counters within {float(tolerance) * 100:g}% or a listed divergence)" if tolerance else ""
        lines.append(
            f"- **status: {v['status']}** - {fmt_int(compared)} nodes compared, "
            f"{fmt_int(int(v.get('nodes_passed', 0)))} passed, {fmt_int(int(v.get('nodes_failed', 0)))} failed{within}"
        )
    lines.append(
        f"- matmul FLOPs equal exactly on {fmt_int(int(v.get('matmul_flops_exact_nodes', exact)))} of "
        f"{fmt_int(compared)} nodes"
    )
    worst = _worst(nodes)
    if worst and worst[0][0] > 0:
        err, nid, metric, _ = worst[0]
        lines.append(f"- worst relative error: {err * 100:.3g}% on `{nid}` ({metric})")
    elif nodes:
        lines.append("- worst relative error: 0 (every compared counter is equal)")
    if "divergence_rows" in v:
        lines.append(
            f"- known divergences: {v['divergence_rows']} row(s); nodes outside their expected range: "
            f"{v.get('divergence_nodes_outside_range', 0)}"
        )
    return lines


def validation_section(r: AnalysisResult) -> str:
    nodes = _validation_nodes(r)
    lines = [
        "## Validation: analytic vs traced\n",
        "Every node's closed-form (analytic) count against the traced count, same module ids on both sides "
        "(`validation.json` holds all of it).\n",
        *_validation_headline(r, nodes),
    ]
    failures = r.validation_summary.get("failures") or {}
    if isinstance(failures, Mapping) and failures:
        failed = [(f"`{nid}`", "; ".join(str(f) for f in items)) for nid, items in sorted(failures.items())]
        lines += ["", "Failed nodes:\n", md_table(("node", "failed checks"), failed[:_LIST_LIMIT], align="ll")]
    shown = [w for w in _worst(nodes) if w[0] > 0][:10]
    if shown:
        rows = []
        for err, nid, metric, n in shown:
            traced = (n.get("traced") or {}).get(metric)
            analytic = (n.get("analytic") or {}).get(metric)
            rows.append((f"`{nid}`", metric, _num(traced), _num(analytic), f"{err * 100:.3g}%"))
        lines += ["", "Largest differences:\n", md_table(("node", "metric", "traced", "analytic", "|rel error|"), rows)]
    lines += ["", "Known divergences (each with its reason):\n", _divergences(r)]
    return "\n".join(lines)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int):
        return fmt_int(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _expected(d: Mapping[str, Any]) -> str:
    if d.get("ratio_range"):
        low, high = d["ratio_range"]
        return f"{_num(low)}..{_num(high)}"
    return _num(d.get("expected_ratio"))


def _divergences(r: AnalysisResult) -> str:
    items = [d for d in r.validation.get("divergences", []) if isinstance(d, Mapping)]
    if not items:
        return "none: no divergence table rows apply.\n"
    rows = []
    for d in items:
        outside = d.get("nodes_outside_range") or []
        where = f"`{d.get('pattern', d.get('module_id', '-'))}`"
        observed = f"{_num(d.get('ratio'))} on `{d['module_id']}`" if "module_id" in d else _num(d.get("ratio"))
        reason = str(d.get("reason", ""))
        if d.get("measured_on"):
            reason += f" (measured on: {d['measured_on']})"
        rows.append(
            (
                str(d.get("id", "-")),
                str(d.get("metric", "-")),
                where,
                _expected(d),
                observed,
                f"{len(outside)} of {_num(d.get('nodes_covered'))}" if isinstance(outside, list) else _num(outside),
                reason,
            )
        )
    header = ("divergence", "metric", "applies to", "expected analytic/traced", "observed", "outside range", "reason")
    return md_table(header, rows, align="lllrrrl")


def coverage_section(r: AnalysisResult) -> str:
    t = r.trace
    buckets: dict[str, list[int]] = {}
    for entry in t.op_ledger.values():
        slot = buckets.setdefault(entry.bucket, [0, 0])
        slot[0] += 1
        slot[1] += entry.count
    ledger = ", ".join(
        f"{name} {fmt_int(buckets.get(name, [0, 0])[0])} ({fmt_int(buckets.get(name, [0, 0])[1])} calls)"
        for name in ("counted", "zero-cost", "unsupported")
    )
    lines = [
        "## Coverage ledger\n",
        "Every aten op that ran is counted by a formula, free by a named rule, or unsupported. "
        f"Distinct ops: {ledger}.",
        "",
        "### Unsupported ops\n",
    ]
    if t.unsupported:
        rows = [(f"`{u.op}`", fmt_int(u.count), _limited([f"`{p}`" for p in u.module_paths], 5)) for u in t.unsupported]
        lines.append(md_table(("op", "calls", "module paths"), rows, align="lrl"))
        lines.append("These ops ran but are not in any FLOP or byte count above.")
    else:
        lines.append("none: no op went uncounted.")
    lines += ["", "### Uncalled modules\n"]
    if t.uncalled_modules:
        lines.append(
            f"{len(t.uncalled_modules)} module(s) exist in the tree but never ran for this workload: "
            + _limited([f"`{p}`" for p in t.uncalled_modules], _LIST_LIMIT)
            + "."
        )
    else:
        lines.append("none: every module ran.")
    return "\n".join(lines)


def _limited(items: Sequence[str], limit: int) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def assumptions_section(r: AnalysisResult) -> str:
    """The analysis's own assumption lines when it recorded them, else the same facts read from the result."""
    lines = [a[:1].upper() + a[1:] for a in r.assumptions] or _derived_assumptions(r)
    return "## Assumptions\n\n" + "\n".join(f"- {a}" for a in lines)


def _derived_assumptions(r: AnalysisResult) -> list[str]:
    t, p, d = r.trace, r.profile, r.device
    effs = ", ".join(f"{c} {e:.2f}" for c, e in p.category_efficiency.items())
    attention = (
        "flash: fused attention, causal-effective products (q*k - q*(q-1)/2 score entries) feed time; "
        "scores are never stored"
        if t.attention == "flash"
        else "eager: dense score products and the materialised score matrix feed time"
    )
    return [
        "FLOPs: 2 per multiply-accumulate; matmul FLOPs follow torch's FlopCounterMode (attention dense); "
        "vector FLOPs (norms, softmax, activations, elementwise) are counted separately.",
        f"Attention kernel: {attention}.",
        f"MoE routing: {t.routing} (FLOPs do not depend on it; which expert weights are read does).",
        f"Device: {d.name}, dense peaks from {d.source} ({d.source_date}).",
        f"Efficiencies ({p.source}): {effs}; memory {p.memory_efficiency:.2f}; "
        f"per-kernel overhead {p.overhead_note() or fmt_ms(p.kernel_overhead_s)}.",
        f"Decode: {t.decode_method} ({t.decode_note}).",
        "Bytes: eager op-level traffic, an upper bound for fused kernels.",
    ]


def layers_section(r: AnalysisResult) -> str:
    rows = []
    classes = layer_classes(r)
    infos = [layer_summary(r, cls) for cls in classes]
    for cls, info, time_text in zip(classes, infos, fmt_ms_column([i.seconds for i in infos]), strict=True):
        rows.append(
            (
                f"[{cls}](layers/{cls}.md)",
                info.role,
                fmt_int(info.nodes),
                fmt_flops(info.cost.total_flops),
                time_text,
            )
        )
    return (
        "## Layer pages\n\n"
        + _labelled(r)
        + "One page per analysed layer class: what it is in DeepSeek-OCR, its configuration here, its formulas "
        "with their symbols and sources, and this workload's numbers (totals over the outermost nodes of the "
        "class).\n\n" + md_table(("class", "role", "nodes", "FLOPs", "time"), rows, align="llrrr")
    )
