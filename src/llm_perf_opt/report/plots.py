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
from llm_perf_opt.report.humanize import fmt_ms, fmt_share, si
from llm_perf_opt.report.plot_data import PlotSpec, plot_specs, point_labels, short_id

__all__ = [
    "SWEEP_SERIES_PER_PANEL",
    "best_fitting",
    "draw_plot",
    "figure_bytes",
    "render_plots",
    "render_sweep_plot",
]

_SIZE = (8.0, 4.5)
_DPI = 100
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
    """``plots/stage_times.{png,svg}``, ``plots/category_shares.{png,svg}``, ``plots/roofline.{png,svg}``, drawn
    now (:func:`llm_perf_opt.report.figures.report_plots` reuses cached bytes instead)."""
    files: dict[str, bytes] = {}
    for spec in plot_specs(result):
        files.update(draw_plot(spec))
    return files


def draw_plot(spec: PlotSpec) -> dict[str, bytes]:
    """``{plots/<stem>.png: ..., plots/<stem>.svg: ...}`` of one report figure, drawn from its spec alone."""
    draw = _DRAWERS[spec.stem]

    def bound(fig: Figure) -> None:
        draw(fig, spec.data)

    return figure_bytes(bound, f"plots/{spec.stem}")


def _stacked(ax: Any, rows: Sequence[Sequence[Any]], total: float) -> None:
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


def _stage_times(fig: Figure, d: Mapping[str, Any]) -> None:
    """Top: every stage's total (decode is all its steps), so the longest stage is the longest bar. Bottom: the
    two latencies a user waits for, TTFT and TPOT (one mean decode step), each its own annotated bar."""
    ttft, tpot, steps = d["ttft_s"], d["tpot_s"], d["decode_steps"]
    top = fig.add_axes((0.2, 0.5, 0.72, 0.4))
    _stacked(top, d["rows"], d["end_to_end_s"])
    top.set_title(f"End to end {fmt_ms(d['end_to_end_s'])}: stage totals, split by bound")
    bottom = fig.add_axes((0.2, 0.13, 0.72, 0.18))
    latency = [("time to first token", ttft)]
    if steps > 0:
        latency.append(("time per output token", tpot))
    for i, (_, sec) in enumerate(latency):
        bottom.barh(i, sec * 1e3, color="#8C8C8C")
    notes = [f"TTFT {fmt_ms(ttft)} ({d['ttft_parts']})"]
    if steps > 0:
        notes.append(f"TPOT {fmt_ms(tpot)} (mean of {steps} decode steps)")
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


def _category_shares(fig: Figure, d: Mapping[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    cats = d["categories"]
    width = 0.27
    series = (("time", d["time"], "#4C72B0"), ("FLOPs", d["flops"], "#DD8452"), ("bytes", d["bytes"], "#55A868"))
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
    eager = " (time: eager op-by-op breakdown)" if d["runtime_timed"] else ""
    ax.set_title(f"Operator categories: share of time, FLOPs and bytes{eager}")
    ax.legend(**_BELOW)


def _roofline(fig: Figure, d: Mapping[str, Any]) -> None:
    ax = fig.add_axes((0.14, 0.2, 0.42, 0.7))
    peak, vec, bw = d["matmul_peak"], d["vector_peak"], d["bandwidth"]
    points = [(nid, x, y) for nid, x, y in d["points"]]
    xs = [p[1] for p in points] or [1.0]
    lo, hi = min(min(xs) / 4, 0.1), max(max(xs) * 4, 4 * peak / bw)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    roof = f"{d['dtype']} matmul peak + DRAM"
    ax.loglog(grid, [min(peak, bw * x) for x in grid], color="black", lw=1.5, label=roof)
    ax.loglog(grid, [min(vec, bw * x) for x in grid], color="grey", lw=1, ls="--", label="fp32 vector peak + DRAM")
    listing = []
    for k, (nid, x, y) in enumerate(points, 1):
        colour = _STAGE_COLOURS.get(nid.split("/", 1)[0], "#333333")
        ax.scatter([x], [y], color=colour, s=22, zorder=3)
        listing.append((f"{k:>2}  {short_id(nid)}", colour))
    for text, (x, y) in point_labels([(x, y) for _, x, y in points]):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    for k, (text, colour) in enumerate(listing):
        fig.text(0.59, 0.88 - k * 0.055, text, fontsize=7, color=colour, va="top", family="DejaVu Sans Mono")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "FLOP/s", digits=2)))
    ax.minorticks_off()  # plain major labels only: no mathtext parsing, no hundreds of minor ticks to lay out
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("achieved rate (incl. launch overhead)")
    eager = " (eager op-by-op breakdown)" if d["runtime_timed"] else ""
    ax.set_title(f"Roofline on {d['device']}{eager}", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=7)


_DRAWERS: Mapping[str, Callable[[Figure, Mapping[str, Any]], None]] = {
    "stage_times": _stage_times,
    "category_shares": _category_shares,
    "roofline": _roofline,
}
"""The drawer of each report figure, by stem (the stems of :func:`~llm_perf_opt.report.plot_data.plot_specs`)."""


SWEEP_SERIES_PER_PANEL = 6
"""Most lines one sweep panel draws (the series with the highest fitting pages/day); the CSV has every row."""


def render_sweep_plot(rows: Sequence[Any], *, stem: str = "sweep") -> dict[str, bytes]:
    """Pages/day against batch size: one panel per device, one line per (dtype, mode, page, N) series - the
    :data:`SWEEP_SERIES_PER_PANEL` best ones - with a legend.  A configuration that does not fit the device's memory
    has no throughput: it is marked x on the batch axis, off the line, and is never the best; the best fitting point
    of each panel is starred and labelled."""
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
                fit = [p for p in pts if p.fits]
                ax.plot([p.batch_size for p in fit], [p.pages_per_day for p in fit], color=colour, lw=1, label=key)
                ax.scatter([p.batch_size for p in fit], [p.pages_per_day for p in fit], s=18, color=colour, zorder=3)
                over = [p.batch_size for p in pts if not p.fits]  # no throughput: marked on the axis, not drawn high
                ax.scatter(over, [0] * len(over), s=28, marker="x", color=colour, zorder=3, clip_on=False)
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
        fig.suptitle(
            "What-if sweep: pages/day by batch size (x on the axis: does not fit the device memory)", fontsize=9
        )

    n_rows = math.ceil(max(len(panels), 1) / 3)
    return figure_bytes(draw, stem, size=(11.0, 4.0 + 3.2 * n_rows))


def best_fitting(rows: Iterable[Any]) -> Any | None:
    """The row with the most pages/day among those that fit the device's memory (the smaller batch on a tie); None
    when nothing fits.  A configuration that does not fit is never the best."""
    fitting = [row for row in rows if row.fits]
    return max(fitting, key=lambda row: (row.pages_per_day, -row.batch_size)) if fitting else None


_SERIES_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860")
