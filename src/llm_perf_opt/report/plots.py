"""Report plots (PNG and SVG), byte-identical run to run: stage times, category shares, a roofline of the heaviest
modules; and the sweep plot.

Determinism: the Agg canvas directly (no pyplot state), a fixed figure size and dpi, the bundled DejaVu Sans font,
a fixed ``svg.hashsalt``, and no date or software version in the metadata.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf import Rates
from llm_perf_opt.perf.tree import id_components
from llm_perf_opt.report.humanize import fmt_ms, fmt_share, si
from llm_perf_opt.report.stage_view import runtime_timed, stage_bound

__all__ = [
    "ROOFLINE_PER_STAGE",
    "SWEEP_SERIES_PER_PANEL",
    "best_fitting",
    "figure_bytes",
    "heaviest_leaves",
    "render_plots",
    "render_sweep_plot",
    "short_id",
]

ROOFLINE_PER_STAGE = 3
"""How many of each stage's slowest leaf modules the roofline shows."""

_SIZE = (8.0, 4.5)
_DPI = 100
_STAGE_ORDER = ("vision", "projector", "prefill", "decode", "other")
_STAGE_COLOURS = {
    "vision": "#4C72B0",
    "projector": "#8172B2",
    "prefill": "#DD8452",
    "decode": "#55A868",
    "other": "#937860",
}
_BELOW: Mapping[str, Any] = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14), "ncol": 3, "frameon": False}
_BOUND_COLOURS = (("compute", "#4C72B0"), ("memory", "#DD8452"), ("overhead", "#C44E52"))


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "llm-perf-opt",
            "svg.fonttype": "path",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "path.simplify": True,
        }
    ):
        yield


def figure_bytes(draw: Callable[[Figure], None], stem: str, *, size: tuple[float, float] = _SIZE) -> dict[str, bytes]:
    """``{stem.png: ..., stem.svg: ...}`` of one figure drawn by ``draw`` (deterministic bytes)."""
    out: dict[str, bytes] = {}
    with _style():
        fig = Figure(figsize=size, dpi=_DPI)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.2, right=0.97, top=0.9, bottom=0.2)  # fixed: tight_layout costs a layout pass
        draw(fig)
        for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=_DPI, metadata=meta)
            out[f"{stem}.{fmt}"] = buffer.getvalue()
    return out


def render_plots(result: AnalysisResult) -> dict[str, bytes]:
    """``plots/stage_times.{png,svg}``, ``plots/category_shares.{png,svg}``, ``plots/roofline.{png,svg}``."""
    files: dict[str, bytes] = {}
    drawers: tuple[tuple[str, Callable[[Figure, AnalysisResult], None]], ...] = (
        ("stage_times", _stage_times),
        ("category_shares", _category_shares),
        ("roofline", _roofline),
    )
    for stem, draw in drawers:
        files.update(figure_bytes(_bound(draw, result), f"plots/{stem}"))
    return files


def _bound(draw: Callable[[Figure, AnalysisResult], None], result: AnalysisResult) -> Callable[[Figure], None]:
    def bound(fig: Figure) -> None:
        draw(fig, result)

    return bound


def _stage_rows(r: AnalysisResult) -> list[tuple[str, float, float, float]]:
    """(label, compute-bound, memory-bound, overhead seconds) of every stage total, decode included (all its steps),
    then ``other`` when it is not empty: the bars add up to end to end."""
    rows = []
    for stage in _STAGE_ORDER:
        t = stage_bound(r, stage)
        if t is None or (stage == "other" and t.total_s <= 0):
            continue
        label = f"decode ({r.stages.decode_steps} steps)" if stage == "decode" else stage
        rows.append((label, t.compute_s, t.memory_s, t.overhead_s))
    return rows


def _stacked(ax: Any, rows: Sequence[tuple[str, float, float, float]], total: float) -> None:
    for i, (_, *parts) in enumerate(rows):
        left = 0.0
        for (name, colour), sec in zip(_BOUND_COLOURS, parts, strict=True):
            label = f"{name}-bound" if name != "overhead" else "launch overhead"
            ax.barh(i, sec * 1e3, left=left, color=colour, label=label)
            left += sec * 1e3
        share = f" ({fmt_share(left / 1e3 / total)})" if total > 0 else ""
        ax.text(left, i, "  " + fmt_ms(left / 1e3) + share, va="center")
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.invert_yaxis()
    ax.margins(x=0.3)


def _stage_times(fig: Figure, r: AnalysisResult) -> None:
    """Top: every stage's total (decode is all its steps), so the longest stage is the longest bar. Bottom: the
    two latencies a user waits for, TTFT and TPOT (one mean decode step), each its own annotated bar."""
    s = r.stages
    top = fig.add_axes((0.2, 0.5, 0.72, 0.4))
    _stacked(top, _stage_rows(r), s.end_to_end_s)
    top.set_title(f"End to end {fmt_ms(s.end_to_end_s)}: stage totals, split by bound")
    bottom = fig.add_axes((0.2, 0.13, 0.72, 0.18))
    latency = [("time to first token", s.ttft_s)]
    if s.decode_steps > 0:
        latency.append(("time per output token", s.tpot_s))
    for i, (_, sec) in enumerate(latency):
        bottom.barh(i, sec * 1e3, color="#8C8C8C")
    notes = [f"TTFT {fmt_ms(s.ttft_s)} (vision + projector + prefill)"]
    if s.decode_steps > 0:
        notes.append(f"TPOT {fmt_ms(s.tpot_s)} (mean of {s.decode_steps} decode steps)")
    for i, (_, sec) in enumerate(latency):
        bottom.text(sec * 1e3, i, "  " + notes[i], va="center")
    bottom.set_yticks(range(len(latency)), [name for name, _ in latency])
    bottom.invert_yaxis()
    bottom.margins(x=0.9)
    bottom.set_xlabel("predicted time (ms)")
    handles, names = top.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    top.legend(unique.values(), unique.keys(), loc="upper right", frameon=False, fontsize=8)
    top.set_xlabel("stage total (ms)")


def _category_shares(fig: Figure, r: AnalysisResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    root = r.trace.root
    times = r.timed.nodes["root"].by_category_s
    total_t = sum(times.values()) or 1.0
    total_f = root.cost.total_flops or 1
    total_b = root.cost.total_bytes or 1
    cats = sorted(set(root.by_category) | set(times), key=lambda c: (-times.get(c, 0.0), c))
    width = 0.27
    series = (
        ("time", [times.get(c, 0.0) / total_t for c in cats], "#4C72B0"),
        (
            "FLOPs",
            [(root.by_category[c].total_flops if c in root.by_category else 0) / total_f for c in cats],
            "#DD8452",
        ),
        (
            "bytes",
            [(root.by_category[c].total_bytes if c in root.by_category else 0) / total_b for c in cats],
            "#55A868",
        ),
    )
    for j, (name, values, colour) in enumerate(series):
        ax.barh(
            [i + (j - 1) * width for i in range(len(cats))],
            [v * 100 for v in values],
            height=width,
            color=colour,
            label=name,
        )
    ax.set_yticks(range(len(cats)), cats)
    ax.invert_yaxis()
    ax.set_xlabel("share of the whole workload (%)")
    eager = " (time: eager op-by-op breakdown)" if runtime_timed(r) else ""
    ax.set_title(f"Operator categories: share of time, FLOPs and bytes{eager}")
    ax.legend(**_BELOW)


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
    return [nid for stage in _STAGE_ORDER for nid in [n for n in ranked if n.startswith(stage + "/")][:per_stage]]


def _roofline(fig: Figure, r: AnalysisResult) -> None:
    ax = fig.add_axes((0.14, 0.2, 0.42, 0.7))
    rates = Rates.for_device(r.device, dtype=r.dtype, profile=r.profile, counted_dtype=r.dtype)  # bytes: rescaled
    peak, vec, bw = rates.matmul_peak_flops, rates.vector_peak_flops, rates.memory_bandwidth_bytes_per_s
    points = []
    for nid in heaviest_leaves(r):
        cost = r.trace.nodes[nid].cost
        intensity = cost.total_flops / cost.total_bytes
        points.append((nid, intensity, cost.total_flops / r.timed.nodes[nid].total_s))
    xs = [p[1] for p in points] or [1.0]
    lo, hi = min(min(xs) / 4, 0.1), max(max(xs) * 4, 4 * peak / bw)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.loglog(grid, [min(peak, bw * x) for x in grid], color="black", lw=1.5, label=f"{r.dtype} matmul peak + DRAM")
    ax.loglog(grid, [min(vec, bw * x) for x in grid], color="grey", lw=1, ls="--", label="fp32 vector peak + DRAM")
    listing = []
    for k, (nid, x, y) in enumerate(points, 1):
        colour = _STAGE_COLOURS.get(nid.split("/", 1)[0], "#333333")
        ax.scatter([x], [y], color=colour, s=22, zorder=3)
        listing.append((f"{k:>2}  {short_id(nid)}", colour))
    for text, (x, y) in _point_labels([(x, y) for _, x, y in points]):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    for k, (text, colour) in enumerate(listing):
        fig.text(0.59, 0.88 - k * 0.055, text, fontsize=7, color=colour, va="top", family="DejaVu Sans Mono")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "FLOP/s", digits=2)))
    ax.minorticks_off()  # plain major labels only: no mathtext parsing, no hundreds of minor ticks to lay out
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("achieved rate (incl. launch overhead)")
    eager = " (eager op-by-op breakdown)" if runtime_timed(r) else ""
    ax.set_title(f"Roofline on {r.device.name}{eager}", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=7)


SHORT_ID_WIDTH = 46
"""Characters a shortened module id may take in a plot."""


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


def _point_labels(points: Sequence[tuple[float, float]]) -> list[tuple[str, tuple[float, float]]]:
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


SWEEP_SERIES_PER_PANEL = 6
"""Most lines one sweep panel draws (the series with the highest fitting pages/day); the CSV has every row."""


def render_sweep_plot(rows: Sequence[Any], *, stem: str = "sweep") -> dict[str, bytes]:
    """Pages/day against batch size: one panel per device, one line per (dtype, mode, page, N) series - the
    :data:`SWEEP_SERIES_PER_PANEL` best ones - with a legend.  Points that do not fit the device's memory are drawn
    hollow and never count as the best; the best fitting point of each panel is starred and labelled."""
    panels: dict[str, dict[str, list[Any]]] = {}
    for row in rows:
        key = f"{row.dtype} {row.mode} {row.page_width}x{row.page_height} N={row.max_new_tokens}"
        panels.setdefault(row.device, {}).setdefault(key, []).append(row)

    def best(series: list[Any]) -> float:
        return max((row.pages_per_day for row in series if row.fits), default=-1.0)

    def draw(fig: Figure) -> None:
        n = max(len(panels), 1)
        cols = min(n, 3)
        nrows = math.ceil(n / cols)
        fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.16 + 0.12 / nrows, wspace=0.3, hspace=0.9)
        for index, (device, series) in enumerate(panels.items(), 1):
            ax = fig.add_subplot(nrows, cols, index)
            ranked = sorted(series, key=lambda key: (-best(series[key]), key))
            shown = ranked[:SWEEP_SERIES_PER_PANEL]
            for colour_index, key in enumerate(shown):
                pts = sorted(series[key], key=lambda row: row.batch_size)
                colour = _SERIES_COLOURS[colour_index % len(_SERIES_COLOURS)]
                ax.plot([p.batch_size for p in pts], [p.pages_per_day for p in pts], color=colour, lw=1, label=key)
                for p in pts:
                    face = colour if p.fits else "none"
                    ax.scatter([p.batch_size], [p.pages_per_day], s=18, facecolors=face, edgecolors=colour, zorder=3)
            top = best_fitting(row for key in shown for row in series[key])
            if top is not None:
                ax.scatter([top.batch_size], [top.pages_per_day], marker="*", s=120, color="black", zorder=4)
                ax.annotate(
                    f"best {top.pages_per_day:,.0f}/day\nB={top.batch_size}, {top.dtype}",
                    (top.batch_size, top.pages_per_day),
                    textcoords="offset points",
                    xytext=(-6, -22),
                    ha="right",
                    fontsize=7,
                )
            hidden = len(ranked) - len(shown)
            ax.set_title(device + (f" (+{hidden} series in sweep.csv)" if hidden else ""), fontsize=9)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "", digits=2).strip()))
            ax.minorticks_off()
            ax.set_xlabel("batch size")
            if (index - 1) % cols == 0:
                ax.set_ylabel("pages per day")
            ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
        fig.suptitle("What-if sweep: pages/day by batch size (hollow: does not fit the device memory)", fontsize=9)

    n_rows = math.ceil(max(len(panels), 1) / 3)
    return figure_bytes(draw, stem, size=(11.0, 4.0 + 3.2 * n_rows))


def best_fitting(rows: Iterable[Any]) -> Any | None:
    """The row with the most pages/day among those that fit the device's memory (the smaller batch on a tie); None
    when nothing fits.  A configuration that does not fit is never the best."""
    fitting = [row for row in rows if row.fits]
    return max(fitting, key=lambda row: (row.pages_per_day, -row.batch_size)) if fitting else None


_SERIES_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860")
