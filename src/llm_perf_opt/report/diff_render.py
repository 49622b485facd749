"""Text and JSON views of a :class:`~llm_perf_opt.report.diff.ReportDiff` (what ``diff`` and ``check`` print)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_perf_opt.analysis.assemble import BREAKDOWN_RUNTIME
from llm_perf_opt.report.diff import FACTS, HEADLINE, REPORT_ID, Delta, ReportDiff
from llm_perf_opt.report.humanize import fmt_bytes, fmt_bytes_apart, fmt_flops, fmt_ms, fmt_ms_apart
from llm_perf_opt.runtimes import RUNTIMES

__all__ = ["DEFAULT_LIMIT", "diff_to_dict", "render_diff_text"]

DEFAULT_LIMIT = 40
"""Lines shown per section of the text view (the JSON view has everything)."""


def _is_time(metric: str) -> bool:
    return metric.endswith("time_s") or metric in ("ttft_s", "tpot_s", "end_to_end_s")


def _pair(metric: str, a: float, b: float) -> tuple[str, str]:
    """A and B of one comparison, in one unit (durations, bytes) and apart when they differ."""
    if _is_time(metric):
        return fmt_ms_apart(a, b)
    if metric.endswith("bytes"):
        return fmt_bytes_apart(a, b)
    return _value(metric, a), _value(metric, b)


def _value(metric: str, value: float) -> str:
    if _is_time(metric):
        return fmt_ms(value)
    if metric == "flops":
        return fmt_flops(value)
    if metric.endswith("bytes"):
        return fmt_bytes(value)
    if metric == "pages_per_day":
        return f"{value:,.0f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.6g}"


_NAMES = {
    "flops": "FLOPs",
    "bytes": "bytes",
    "time_s": "time",
    "calls": "calls",
    "weight_bytes": "weights",
    "kv_bytes": "KV",
    "activation_bytes": "peak activations",
    "params": "params",
    "own_params": "own params",
    "predicted_total_time_s": "predicted end to end",
    **HEADLINE,
}


_ORDER = tuple(_NAMES)


def _delta_text(d: Delta) -> str:
    if d.rel is None:
        change = "new"
    elif abs(d.rel) >= 9.995:  # beyond +999%: a factor reads better
        change = f"x{d.b / d.a:.3g}"
    else:
        change = f"{d.rel * 100:+.3g}%"
    a, b = _pair(d.metric, d.a, d.b)
    return f"{_NAMES.get(d.metric, d.metric)} {a} -> {b} ({change})"


def _ordered(deltas: list[Delta]) -> list[Delta]:
    return sorted(deltas, key=lambda d: (_ORDER.index(d.metric) if d.metric in _ORDER else len(_ORDER), d.metric))


def _size(d: Delta) -> float:
    return float("inf") if d.rel is None else abs(d.rel)


def _time_moved(deltas: list[Delta]) -> float:
    """Seconds a node's own time moved (0 when its time is within the tolerance)."""
    return max((abs(d.b - d.a) for d in deltas if d.metric == "time_s"), default=0.0)


def _rank(deltas: list[Delta]) -> tuple[float, float]:
    """Sort key of one node's deltas: the seconds its time moved first (what moves the headline; relative changes
    tie wherever every node scales alike, e.g. bytes -50% under fp8), then the largest relative change."""
    return -_time_moved(deltas), -max(_size(d) for d in deltas)


def _ranking(deltas: list[Delta]) -> str:
    """How the node list is ordered, as its heading says."""
    if any(d.metric == "time_s" for d in deltas):
        return "largest time change first"
    return "largest first"


def _limited(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more (use --limit or --format json)"]


def render_diff_text(diff: ReportDiff, *, limit: int = DEFAULT_LIMIT) -> str:
    """A readable diff: header, added/removed/changed nodes, metric deltas by node, and a one-line verdict."""
    a, b = diff.a, diff.b
    lines = [
        f"A: {a.label}" + (f" (report {a.report_id})" if a.report_id else ""),
        f"B: {b.label}" + (f" (report {b.report_id})" if b.report_id else ""),
        f"tolerance: {diff.tolerance:g} relative; {len(a.nodes)} nodes in A, {len(b.nodes)} in B",
    ]
    if diff.counts_only:
        lines.append("counts only: tree shape and counters; class module prefixes and constructor extras ignored")
    lines += _facts_block(diff) + _headline_block(diff)
    shown = {f"fact.{k}" for k in FACTS} | {"model_variant"} | set(HEADLINE)
    if "end_to_end_s" in a.totals or "end_to_end_s" in b.totals:
        shown.add("predicted_total_time_s")  # the headline's end to end
    report_changes = [c for c in diff.changes if c.module_id == REPORT_ID and c.field not in shown]
    report_deltas = [d for d in diff.deltas if d.module_id == REPORT_ID and d.metric not in shown]
    if report_changes or report_deltas:
        lines.append("")
        lines.append("report:")
        lines += [f"  {c.field}: {c.a} -> {c.b}" for c in report_changes]
        lines += [f"  {_delta_text(d)}" for d in report_deltas]
    if diff.added:
        lines += ["", f"added nodes ({len(diff.added)}):"]
        lines += _limited([f"  + {nid} ({b.nodes[nid].class_name.rsplit('.', 1)[-1]})" for nid in diff.added], limit)
    if diff.removed:
        lines += ["", f"removed nodes ({len(diff.removed)}):"]
        lines += _limited([f"  - {nid} ({a.nodes[nid].class_name.rsplit('.', 1)[-1]})" for nid in diff.removed], limit)
    node_changes = [c for c in diff.changes if c.module_id != REPORT_ID]
    if node_changes:
        by_node: dict[str, list[str]] = {}
        for c in node_changes:
            by_node.setdefault(c.module_id, []).append(f"{c.field} {c.a!r} -> {c.b!r}")
        lines += ["", f"changed nodes ({len(by_node)}):"]
        lines += _limited([f"  ~ {nid}: " + "; ".join(items) for nid, items in by_node.items()], limit)
    node_deltas = [d for d in diff.deltas if d.module_id != REPORT_ID]
    if node_deltas:
        grouped: dict[str, list[Delta]] = {}
        for d in node_deltas:
            grouped.setdefault(d.module_id, []).append(d)
        ranked = sorted(grouped.items(), key=lambda item: (*_rank(item[1]), item[0]))
        lines += ["", f"metric differences beyond the tolerance ({len(grouped)} nodes, {_ranking(node_deltas)}):"]
        lines += _breakdown_note(diff, node_deltas)
        lines += _limited([f"  {nid}: " + "; ".join(_delta_text(d) for d in _ordered(ds)) for nid, ds in ranked], limit)
    lines += ["", _verdict(diff)]
    return "\n".join(lines) + "\n"


def _breakdown_note(diff: ReportDiff, deltas: Sequence[Delta]) -> list[str]:
    """Where a side's headline comes from a runtime's kernel model (vllm, sglang, hf-cuda-graph), its node times are
    the eager op-by-op breakdown, not that runtime's: say so above node time deltas, which would otherwise sit beside
    a headline end to end they do not add up to."""
    if not any(_is_time(d.metric) for d in deltas):
        return []
    runtimes = {
        side: RUNTIMES.get(str(snapshot.facts.get("runtime"))) for side, snapshot in (("A", diff.a), ("B", diff.b))
    }
    others = [f"{side} ran {rt.runtime_id}" for side, rt in runtimes.items() if rt is not None and not rt.is_baseline]
    if not others:
        return []
    return [
        f"  (node times are the eager op-by-op breakdown ({BREAKDOWN_RUNTIME}) on both sides, not the headline's "
        f"runtime: {' and '.join(others)})"
    ]


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _facts_block(diff: ReportDiff) -> list[str]:
    """What each report is: model, source revision, workload, device, dtype, attention, runtime, profile; a ``*``
    marks every fact that differs."""
    a, b = diff.a.facts, diff.b.facts
    if not a and not b:
        return []
    rows = [("", "A", "B", "")]
    for key in FACTS:
        if key in a or key in b:
            va, vb = str(a.get(key, "-")), str(b.get(key, "-"))
            rows.append((key, _clip(va), "same" if va == vb else _clip(vb), "" if va == vb else "* differs"))
    return ["", "what was compared:", *_table(rows)]


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _headline_block(diff: ReportDiff) -> list[str]:
    """TTFT, TPOT, end to end, pages/day, peak memory, max batch: A, B and the change."""
    a, b = diff.a.totals, diff.b.totals
    keys = [k for k in HEADLINE if k in a or k in b]
    if not keys or diff.counts_only:
        return []
    rows = [("", "A", "B", "change")]
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if va is None or vb is None:
            change = "-"
        elif va == vb:
            change = "same"
        else:
            change = "new" if not va else f"{(vb - va) / abs(va) * 100:+.1f}%"
        if va is None or vb is None:
            shown = ("-" if va is None else _value(key, va), "-" if vb is None else _value(key, vb))
        else:
            shown = _pair(key, va, vb)
        rows.append((HEADLINE[key], *shown, change))
    return ["", "headline:", *_table(rows)]


def _verdict(diff: ReportDiff) -> str:
    if diff.equal:
        return f"EQUAL within tolerance {diff.tolerance:g}"
    changed = len({c.module_id for c in diff.changes if c.module_id != REPORT_ID})
    metric_nodes = len({d.module_id for d in diff.deltas if d.module_id != REPORT_ID})
    inner = diff.innermost()
    shown = ", ".join(inner[:5]) + (f" and {len(inner) - 5} more" if len(inner) > 5 else "")
    headline = _headline_moves(diff)
    first = f"; innermost: {shown}" if inner else ("" if headline else "; only the report header differs")
    return (
        f"DIFFERENT: {len(diff.added)} added, {len(diff.removed)} removed, {changed} changed, "
        f"{metric_nodes} with metric differences{headline}{first}"
    )


def _headline_moves(diff: ReportDiff) -> str:
    """``; headline: TTFT 73.23 ms -> 19.69 ms (-73.1%), ...`` for every headline number beyond the tolerance."""
    moved = [d for d in diff.deltas if d.module_id == REPORT_ID and d.metric in HEADLINE]
    if not moved:
        return ""
    order = list(HEADLINE)
    return "; headline: " + ", ".join(_delta_text(d) for d in sorted(moved, key=lambda d: order.index(d.metric)))


def diff_to_dict(diff: ReportDiff) -> dict[str, Any]:
    """Plain data for ``--format json`` (every difference, no limit)."""
    return {
        "a": {"label": diff.a.label, "report_id": diff.a.report_id, "nodes": len(diff.a.nodes)},
        "b": {"label": diff.b.label, "report_id": diff.b.report_id, "nodes": len(diff.b.nodes)},
        "tolerance": diff.tolerance,
        "counts_only": diff.counts_only,
        "facts": {"a": dict(diff.a.facts), "b": dict(diff.b.facts)},
        "headline": {k: {"a": diff.a.totals.get(k), "b": diff.b.totals.get(k)} for k in HEADLINE},
        "equal": diff.equal,
        "added": list(diff.added),
        "removed": list(diff.removed),
        "changed": [{"module_id": c.module_id, "field": c.field, "a": c.a, "b": c.b} for c in diff.changes],
        "metric_deltas": [
            {"module_id": d.module_id, "metric": d.metric, "a": d.a, "b": d.b, "rel": d.rel} for d in diff.deltas
        ],
    }
