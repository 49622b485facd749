"""The sweep plot (PNG and SVG, matplotlib), byte-identical run to run, and :func:`figure_bytes`, which the serving
plots share.  (The report's own figures are SVG written without matplotlib: :mod:`llm_perf_opt.report.figures`.)

Determinism: the Agg canvas directly (no pyplot state), a fixed figure size and dpi, the bundled DejaVu Sans font,
a fixed ``svg.hashsalt``, and no date or software version in the metadata.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from llm_perf_opt.report.humanize import si

__all__ = [
    "SWEEP_SERIES_PER_PANEL",
    "best_fitting",
    "figure_bytes",
    "plain_ticks",
    "render_sweep_plot",
    "si_ticks",
]

_SIZE = (8.0, 4.5)
_DPI = 100


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


def si_ticks(axis: Any) -> None:
    """Tick labels with SI prefixes (``200 k``, ``2.9 M``), never matplotlib's ``1e6`` offset above the axis."""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "", digits=2).strip()))


def plain_ticks(axis: Any) -> None:
    """Tick labels as plain numbers (``1``, ``64``, ``1000``) on a log axis, not powers (``10^3``)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


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
            plain_ticks(ax.xaxis)
            si_ticks(ax.yaxis)
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
