"""Report plots (PNG and SVG), byte-identical run to run: stage times, category shares, a roofline of the heaviest
modules; and the sweep plot.

Determinism: the Agg canvas directly (no pyplot state), a fixed figure size and dpi, the bundled DejaVu Sans font,
a fixed ``svg.hashsalt``, and no date or software version in the metadata.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf import Rates
from llm_perf_opt.perf.tree import id_components
from llm_perf_opt.report.humanize import fmt_ms, si

__all__ = ["ROOFLINE_PER_STAGE", "figure_bytes", "heaviest_leaves", "render_plots", "render_sweep_plot"]

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


def figure_bytes(draw: Callable[[Figure], None], stem: str) -> dict[str, bytes]:
    """``{stem.png: ..., stem.svg: ...}`` of one figure drawn by ``draw`` (deterministic bytes)."""
    out: dict[str, bytes] = {}
    with _style():
        fig = Figure(figsize=_SIZE, dpi=_DPI)
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
    """(label, compute-bound, memory-bound, overhead seconds): the TTFT stages, then one mean decode step (so a long
    generation does not dwarf the rest), then ``other`` when it is not empty."""
    rows = []
    steps = max(r.stages.decode_steps, 1)
    for stage in _STAGE_ORDER:
        t = r.timed.nodes.get(stage)
        if t is None or (stage == "other" and t.total_s <= 0):
            continue
        scale = 1.0 / steps if stage == "decode" else 1.0
        label = "decode step (TPOT)" if stage == "decode" else stage
        rows.append((label, t.compute_bound_s * scale, t.memory_bound_s * scale, t.overhead_s * scale))
    return rows


def _stage_times(fig: Figure, r: AnalysisResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    rows = _stage_rows(r)
    for i, (_, *parts) in enumerate(rows):
        left = 0.0
        for (name, colour), sec in zip(_BOUND_COLOURS, parts, strict=True):
            label = f"{name}-bound" if name != "overhead" else "launch overhead"
            ax.barh(i, sec * 1e3, left=left, color=colour, label=label)
            left += sec * 1e3
        ax.text(left, i, "  " + fmt_ms(left / 1e3), va="center")
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("predicted time (ms)")
    s = r.stages
    ax.set_title(
        f"TTFT {fmt_ms(s.ttft_s)} · TPOT {fmt_ms(s.tpot_s)} · end to end {fmt_ms(s.end_to_end_s)} "
        f"({s.decode_steps} decode steps)"
    )
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), **_BELOW)
    ax.margins(x=0.15)


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
    ax.set_title("Operator categories: share of time, FLOPs and bytes")
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
    ax = fig.add_axes((0.15, 0.2, 0.45, 0.7))
    rates = Rates.for_device(r.device, dtype=r.dtype, profile=r.profile)
    peak, vec, bw = rates.matmul_peak_flops, rates.vector_peak_flops, rates.memory_bandwidth_bytes_per_s
    points = []
    for nid in heaviest_leaves(r):
        cost = r.trace.nodes[nid].cost
        intensity = cost.total_flops / (cost.total_bytes * rates.bytes_scale)
        points.append((nid, intensity, cost.total_flops / r.timed.nodes[nid].total_s))
    xs = [p[1] for p in points] or [1.0]
    lo, hi = min(min(xs) / 4, 0.1), max(max(xs) * 4, 4 * peak / bw)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.loglog(grid, [min(peak, bw * x) for x in grid], color="black", lw=1.5, label=f"{r.dtype} matmul peak + DRAM")
    ax.loglog(grid, [min(vec, bw * x) for x in grid], color="grey", lw=1, ls="--", label="fp32 vector peak + DRAM")
    listing = []
    for k, (nid, x, y) in enumerate(points, 1):
        stage = nid.split("/", 1)[0]
        colour = _STAGE_COLOURS.get(stage, "#333333")
        ax.scatter([x], [y], color=colour, s=22, zorder=3)
        ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        listing.append((f"{k:>2}  {_short_id(nid)}", colour))
    for k, (text, colour) in enumerate(listing):
        fig.text(0.63, 0.88 - k * 0.055, text, fontsize=7, color=colour, va="top", family="DejaVu Sans Mono")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "FLOP/s", digits=2)))
    ax.minorticks_off()  # plain major labels only: no mathtext parsing, no hundreds of minor ticks to lay out
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("achieved rate (incl. launch overhead)")
    ax.set_title(f"Roofline on {r.device.name}", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=7)


def _short_id(nid: str) -> str:
    stage, _, path = nid.partition("/")
    parts = id_components(path)
    tail = ".".join(parts[-3:])
    text = f"{stage} {tail}"
    return text if len(text) <= 44 else text[:42] + ".."


def render_sweep_plot(rows: Sequence[Any], *, stem: str = "sweep") -> dict[str, bytes]:
    """Pages/day against batch size, one line per (device, dtype, mode, page, N) series of sweep rows."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        key = f"{row.device} {row.dtype} {row.mode} {row.page_width}x{row.page_height} N={row.max_new_tokens}"
        series.setdefault(key, []).append((row.batch_size, row.pages_per_day))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for key, pts in series.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size (pages per forward)")
        ax.set_ylabel("pages per day")
        ax.set_title("What-if sweep: throughput per configuration")
        if len(series) <= 12:
            ax.legend(fontsize=7, frameon=False)

    return figure_bytes(draw, stem)
