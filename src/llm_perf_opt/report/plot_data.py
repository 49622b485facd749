"""What each report plot draws, as plain data: the numbers and labels of one figure.

A :class:`PlotSpec` is everything :mod:`llm_perf_opt.report.figures` reads to draw a figure - the drawers see the
spec, never the :class:`AnalysisResult` - so a figure's bytes follow from its spec alone.  Floats are kept as they
are computed (JSON round-trips them exactly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from attrs import field, frozen

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf import Rates
from llm_perf_opt.perf.tree import id_components
from llm_perf_opt.report.stage_view import runtime_timed, stage_bound, time_table

__all__ = [
    "ROOFLINE_PER_STAGE",
    "SHORT_ID_WIDTH",
    "STAGE_ORDER",
    "PlotSpec",
    "category_shares_data",
    "heaviest_leaves",
    "plot_specs",
    "point_labels",
    "roofline_data",
    "short_id",
    "stage_rows",
    "stage_times_data",
]

ROOFLINE_PER_STAGE = 3
"""How many of each stage's slowest leaf modules the roofline shows."""

STAGE_ORDER = ("vision", "projector", "prefill", "decode", "other")
"""Stages in the order the plots list them."""

SHORT_ID_WIDTH = 46
"""Characters a shortened module id may take in a plot."""


@frozen(kw_only=True)
class PlotSpec:
    """One report figure as data: its file stem and what its drawer reads (JSON-able: str, int, float, bool,
    lists and str-keyed dicts)."""

    stem: str = field(metadata={"help": "file name without extension, e.g. 'stage_times' (also the drawer's name)"})
    data: dict[str, Any] = field(metadata={"help": "everything the drawer reads"})


def plot_specs(r: AnalysisResult) -> tuple[PlotSpec, ...]:
    """The report's figures in file order: stage times, category shares, roofline."""
    return (
        PlotSpec(stem="stage_times", data=stage_times_data(r)),
        PlotSpec(stem="category_shares", data=category_shares_data(r)),
        PlotSpec(stem="roofline", data=roofline_data(r)),
    )


def stage_rows(r: AnalysisResult) -> list[tuple[str, float, float, float, float]]:
    """(label, compute-bound, memory-bound, overhead seconds, the stage's time as report.md's Time table shows it) of
    every stage total, decode included (all its steps), then ``other`` when it is not empty: the bars add up to end to
    end."""
    rows = []
    for stage in STAGE_ORDER:
        t = stage_bound(r, stage)
        if t is None or (stage == "other" and t.total_s <= 0):
            continue
        steps = r.stages.decode_steps
        label = f"decode ({steps:,} step{'s' if steps != 1 else ''})" if stage == "decode" else stage
        rows.append((label, t.compute_s, t.memory_s, t.overhead_s, getattr(r.stages, f"{stage}_s")))
    return rows


def stage_times_data(r: AnalysisResult) -> dict[str, Any]:
    """Stage totals split by bound, the two latencies a user waits for (TTFT, TPOT), and every time of report.md's
    Time table (``time_column_s``: the stage labels are formatted in that column, as the table formats them)."""
    s = r.stages
    return {
        "rows": [list(row) for row in stage_rows(r)],
        "time_column_s": [seconds for _, seconds in time_table(r)],
        "end_to_end_s": s.end_to_end_s,
        "ttft_s": s.ttft_s,
        "ttft_parts": "prefill; text only, no page" if r.workload.text_only else "vision + projector + prefill",
        "tpot_s": s.tpot_s,
        "decode_steps": s.decode_steps,
    }


def category_shares_data(r: AnalysisResult) -> dict[str, Any]:
    """Each operator category's share of the whole workload's time, FLOPs and bytes (fractions), largest time
    first."""
    root = r.trace.root
    times = r.timed.nodes["root"].by_category_s
    total_t = sum(times.values()) or 1.0
    total_f = root.cost.total_flops or 1
    total_b = root.cost.total_bytes or 1
    cats = sorted(set(root.by_category) | set(times), key=lambda c: (-times.get(c, 0.0), c))
    return {
        "categories": cats,
        "time": [times.get(c, 0.0) / total_t for c in cats],
        "flops": [(root.by_category[c].total_flops if c in root.by_category else 0) / total_f for c in cats],
        "bytes": [(root.by_category[c].total_bytes if c in root.by_category else 0) / total_b for c in cats],
        "runtime_timed": runtime_timed(r),
    }


def heaviest_leaves(r: AnalysisResult, per_stage: int = ROOFLINE_PER_STAGE) -> list[str]:
    """The ``per_stage`` slowest leaf modules (no children, with FLOPs and bytes) of each stage, in stage order and
    slowest first within a stage - so a decode-dominated run still shows its vision and prefill kernels."""
    leaves = [
        nid
        for nid, node in r.trace.nodes.items()
        if "/" in nid
        and not node.children
        and node.cost.total_flops > 0
        and node.cost.total_bytes > 0
        and nid in r.timed.nodes
        and r.timed.nodes[nid].total_s > 0
    ]
    ranked = sorted(leaves, key=lambda nid: (-r.timed.nodes[nid].total_s, nid))
    return [nid for stage in STAGE_ORDER for nid in [n for n in ranked if n.startswith(stage + "/")][:per_stage]]


def roofline_data(r: AnalysisResult) -> dict[str, Any]:
    """The device's roofs (matmul peak at the dtype, fp32 vector peak, DRAM bandwidth) and the heaviest leaves as
    (id, arithmetic intensity FLOP/byte, achieved FLOP/s)."""
    rates = Rates.for_device(r.device, dtype=r.dtype, profile=r.profile, counted_dtype=r.dtype)  # bytes: rescaled
    points = []
    for nid in heaviest_leaves(r):
        cost = r.trace.nodes[nid].cost
        points.append([nid, cost.total_flops / cost.total_bytes, cost.total_flops / r.timed.nodes[nid].total_s])
    return {
        "matmul_peak": rates.matmul_peak_flops,
        "vector_peak": rates.vector_peak_flops,
        "bandwidth": rates.memory_bandwidth_bytes_per_s,
        "points": points,
        "dtype": r.dtype,
        "device": r.device.name,
        "runtime_timed": runtime_timed(r),
    }


def short_id(nid: str, width: int = SHORT_ID_WIDTH) -> str:
    """The one rule plots shorten a module id by: the stage, then as many of the last path units as fit ``width``
    (at most three), where a group index stays with its container (``layers.{1..11}`` is one unit) and ``…`` marks
    what was left out: ``prefill …mlp.experts.{0..63}.down_proj``.  A last unit that alone is too long keeps its
    end."""
    stage, _, path = nid.partition("/")
    units: list[str] = []
    for part in id_components(path):
        if part.startswith("{") and units:
            units[-1] = f"{units[-1]}.{part}"
        else:
            units.append(part)
    for keep in range(min(3, len(units)), 0, -1):
        text = f"{stage} {'…' if len(units) > keep else ''}{'.'.join(units[-keep:])}"
        if len(text) <= width:
            return text
    return f"{stage} …{units[-1][-(width - len(stage) - 2) :]}"


def point_labels(points: Sequence[tuple[float, float]]) -> list[tuple[str, tuple[float, float]]]:
    """One label per cluster of points that would overlap on a log-log plot (within 15% on both axes): ``5,6,7``
    instead of three numbers printed on top of each other."""
    clusters: list[tuple[list[int], tuple[float, float]]] = []
    for k, (x, y) in enumerate(points, 1):
        for members, (cx, cy) in clusters:
            if abs(math.log10(x / cx)) < 0.06 and abs(math.log10(y / cy)) < 0.06:
                members.append(k)
                break
        else:
            clusters.append(([k], (x, y)))
    return [(",".join(map(str, members)), xy) for members, xy in clusters]
