"""The report's figures as SVG (``plots/stage_times.svg``, ``plots/category_shares.svg``, ``plots/roofline.svg``),
drawn from their :class:`~llm_perf_opt.report.plot_data.PlotSpec` alone with :mod:`llm_perf_opt.report.svg` - no
plotting library, a few milliseconds, byte-identical run to run.

Every number a figure prints is formatted by :mod:`llm_perf_opt.report.humanize`, as ``report.md`` formats it.
Margins are sized from the estimated width of the labels they hold, and each bar chart's scale leaves room for the
label at the end of its longest bar, so no label overlaps another or leaves the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_ms, fmt_ms_column, fmt_share, si
from llm_perf_opt.report.plot_data import PlotSpec, plot_specs, point_labels, short_id
from llm_perf_opt.report.svg import (
    LegendItem,
    LinearScale,
    LogScale,
    Svg,
    axis_bottom,
    axis_left,
    legend_row,
    text_width,
    wrap,
)

__all__ = ["STAGE_COLOURS", "draw_plot", "report_plots"]

STAGE_COLOURS: Mapping[str, str] = {
    "vision": "#4C72B0",
    "projector": "#8172B2",
    "prefill": "#DD8452",
    "decode": "#55A868",
    "other": "#937860",
}
"""The colour of each stage's points and listing lines in the roofline."""

_BOUNDS = (
    LegendItem(label="compute-bound", colour="#4C72B0"),
    LegendItem(label="memory-bound", colour="#DD8452"),
    LegendItem(label="launch overhead", colour="#C44E52"),
)
_SERIES = (("time", "#4C72B0"), ("FLOPs", "#DD8452"), ("bytes", "#55A868"))
_WIDTH = 800.0
_PAD = 14.0
_TITLE = 14.0
_LABEL = 12.0
_SMALL = 10.0
_ROW = 30.0
_BAR = 18.0
_DOT = 4.5


def report_plots(result: AnalysisResult) -> dict[str, bytes]:
    """``plots/<stem>.svg`` of every report figure, in file order."""
    files: dict[str, bytes] = {}
    for spec in plot_specs(result):
        files.update(draw_plot(spec))
    return files


def draw_plot(spec: PlotSpec) -> dict[str, bytes]:
    """``{plots/<stem>.svg: ...}`` of one report figure, drawn from its spec alone."""
    return {f"plots/{spec.stem}.svg": _DRAWERS[spec.stem](spec.data)}


def _title(svg: Svg, text: str, *, y: float, x: float | None = None) -> float:
    """``text`` wrapped to the canvas, centred (or left-aligned at ``x``); returns the y below it."""
    width = svg.width - 2 * _PAD if x is None else svg.width - x - _PAD
    for line in wrap(text, width=width, size=_TITLE):
        y += _TITLE * 1.3
        svg.text(
            svg.width / 2 if x is None else x,
            y - _TITLE * 0.65,
            line,
            size=_TITLE,
            anchor="middle" if x is None else "start",
        )
    return y


def _bar_scale(totals_ms: Sequence[float], labels: Sequence[str], plot_w: float) -> float:
    """px per ms so that every bar plus a 6 px gap and its end label fits ``plot_w`` (the longest bar decides)."""
    fits = [
        (plot_w - 6 - text_width(label, _LABEL)) / total
        for total, label in zip(totals_ms, labels, strict=True)
        if total > 0
    ]
    return max(min(fits), 1e-12) if fits else plot_w


def _bar_panel(
    svg: Svg,
    rows: Sequence[tuple[str, Sequence[tuple[float, str]], str]],
    *,
    left: float,
    top: float,
    axis_title: str,
) -> float:
    """Horizontal bars, one row each: (name, [(ms, colour) segments stacked left to right], end label); an x axis
    in ms below.  Returns the y below the axis title."""
    plot_w = svg.width - _PAD - left
    totals = [sum(ms for ms, _ in segments) for _, segments, _ in rows]
    scale = _bar_scale(totals, [label for _, _, label in rows], plot_w)
    bottom = top + _ROW * len(rows)
    for i, (name, segments, label) in enumerate(rows):
        mid = top + _ROW * (i + 0.5)
        svg.text(left - 8, mid, name, size=_LABEL, anchor="end")
        x = left
        for ms, colour in segments:
            if ms > 0:
                svg.rect(x, mid - _BAR / 2, ms * scale, _BAR, fill=colour)
                x += ms * scale
        svg.text(x + 6, mid, label, size=_LABEL)
    axis = LinearScale(lo=0.0, hi=plot_w / scale, start=left, end=left + plot_w)
    svg.line(left, top, left, bottom)
    ticks = [(axis.px(v), text) for v, text in axis.ticks()]
    return axis_bottom(svg, ticks, x0=left, x1=left + plot_w, y=bottom, title=axis_title)


def _stage_times(d: Mapping[str, Any]) -> bytes:
    """Top: every stage's total (decode is all its steps), split by bound, labelled with its time and share of end
    to end as report.md's Time table shows them (one column: one unit, one number of decimals). Bottom: the two
    latencies a user waits for, TTFT and TPOT (one mean decode step; none without decode)."""
    total = d["end_to_end_s"]
    shown = [row[-1] for row in d["rows"]]  # in report.md's Time column: its unit and decimals, its text
    texts = fmt_ms_column([*shown, *d["time_column_s"]])
    stages = []
    for (name, *parts, seconds), text in zip(d["rows"], texts, strict=False):
        share = f" ({fmt_share(seconds / total)})" if total > 0 else ""
        segments = [(sec * 1e3, item.colour) for item, sec in zip(_BOUNDS, parts, strict=True)]
        stages.append((name, segments, text + share))
    latency = [
        ("time to first token", [(d["ttft_s"] * 1e3, "#8C8C8C")], f"TTFT {fmt_ms(d['ttft_s'])} ({d['ttft_parts']})")
    ]
    if d["decode_steps"] > 0:
        steps = d["decode_steps"]
        note = f"TPOT {fmt_ms(d['tpot_s'])} (mean of {steps:,} decode step{'s' if steps != 1 else ''})"
        latency.append(("time per output token", [(d["tpot_s"] * 1e3, "#8C8C8C")], note))
    left = _PAD + 8 + max(text_width(name, _LABEL) for name, _, _ in [*stages, *latency])
    svg = Svg(_WIDTH, 0)
    y = _title(svg, f"End to end {fmt_ms(total)}: stage totals, split by bound", y=_PAD / 2)
    legend_row(svg, _BOUNDS, centre=(left + _WIDTH - _PAD) / 2, y=y + 10)
    y = _bar_panel(svg, stages, left=left, top=y + 24, axis_title="stage total (ms)")
    y = _bar_panel(svg, latency, left=left, top=y + 16, axis_title="predicted time (ms)")
    svg.height = y + _PAD
    return svg.to_bytes()


def _category_shares(d: Mapping[str, Any]) -> bytes:
    """Per operator category, three bars: its share of the workload's time, FLOPs and bytes (in %)."""
    cats: list[str] = d["categories"]
    series = [(name, d[key], colour) for (name, colour), key in zip(_SERIES, ("time", "flops", "bytes"), strict=True)]
    left = _PAD + 8 + max((text_width(c, _LABEL) for c in cats), default=0.0)
    plot_w = _WIDTH - _PAD - left
    svg = Svg(_WIDTH, 0)
    eager = " (time: eager op-by-op breakdown)" if d["runtime_timed"] else ""
    top = _title(svg, f"Operator categories: share of time, FLOPs and bytes{eager}", y=_PAD / 2) + 8
    group, bar = 36.0, 9.0
    peak = max((v for _, values, _ in series for v in values), default=0.0) * 100
    axis = LinearScale(lo=0.0, hi=_ceil_nice(peak), start=left, end=left + plot_w)
    bottom = top + group * len(cats)
    for i, cat in enumerate(cats):
        mid = top + group * (i + 0.5)
        svg.text(left - 8, mid, cat, size=_LABEL, anchor="end")
        for j, (_, values, colour) in enumerate(series):
            width = axis.px(values[i] * 100) - left
            if width > 0:
                svg.rect(left, mid + (j - 1.5) * bar, width, bar, fill=colour)
    svg.line(left, top, left, bottom)
    ticks = [(axis.px(v), text) for v, text in axis.ticks()]
    y = axis_bottom(svg, ticks, x0=left, x1=left + plot_w, y=bottom, title="share of the whole workload (%)")
    items = [LegendItem(label=name, colour=colour) for name, colour in _SERIES]
    legend_row(svg, items, centre=(left + _WIDTH - _PAD) / 2, y=y + 12)
    svg.height = y + 24 + _PAD
    return svg.to_bytes()


def _ceil_nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (1 for nothing to show)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= value * (1 - 1e-9))


def _roofline(d: Mapping[str, Any]) -> bytes:
    """Log-log roofline: the matmul roof at the dtype and the fp32 vector roof (each min(peak, bandwidth x
    intensity)), the heaviest leaves as numbered points coloured by stage, and the listing of their ids."""
    peak, vec, bw = d["matmul_peak"], d["vector_peak"], d["bandwidth"]
    points = [(str(nid), float(x), float(y)) for nid, x, y in d["points"]]
    xs = [x for _, x, _ in points] or [1.0]
    x_lo = _decade(min(min(xs) / 4, 0.1), down=True)
    x_hi = _decade(max(max(xs) * 4, 4 * peak / bw), down=False)
    ys = [y for _, _, y in points] + [bw * x_lo, peak, vec]
    y_lo, y_hi = _decade(min(ys), down=True), _decade(max(ys) * 3, down=False)
    y_ticks_log = LogScale(lo=y_lo, hi=y_hi, start=0, end=1).decades()
    y_labels = [si(v, "FLOP/s", digits=1) for v in y_ticks_log]  # powers of ten: 1 TFLOP/s, 10 TFLOP/s, 1 PFLOP/s
    left = _PAD + _LABEL * 1.6 + 10 + max(text_width(t, 11) for t in y_labels)
    plot_w, plot_h = 380.0, 300.0
    listing = [
        (f"{k}", short_id(nid), STAGE_COLOURS.get(nid.split("/", 1)[0], "#333333"))
        for k, (nid, _, _) in enumerate(points, 1)
    ]
    list_x = left + plot_w + 36
    list_w = 26 + max((text_width(text, 11) for _, text, _ in listing), default=0.0)
    svg = Svg(max(_WIDTH, list_x + list_w + _PAD), 0)
    eager = " (eager op-by-op breakdown)" if d["runtime_timed"] else ""
    top = _title(svg, f"Roofline on {d['device']}{eager}", y=_PAD / 2, x=left) + 12
    bottom = top + plot_h
    sx = LogScale(lo=x_lo, hi=x_hi, start=left, end=left + plot_w)
    sy = LogScale(lo=y_lo, hi=y_hi, start=bottom, end=top)
    axis_left(svg, [(sy.px(v), t) for v, t in zip(y_ticks_log, y_labels, strict=True)], x=left, y0=top, y1=bottom)
    svg.text(
        _PAD + _LABEL * 0.6,
        (top + bottom) / 2,
        "achieved rate (incl. launch overhead)",
        size=_LABEL,
        anchor="middle",
        rotate=True,
    )
    x_ticks = _spaced_decades(sx)
    below = axis_bottom(
        svg, x_ticks, x0=left, x1=left + plot_w, y=bottom, title="arithmetic intensity (FLOP / byte moved)"
    )
    roofs = (
        (peak, LegendItem(label=f"{d['dtype']} matmul peak + DRAM", colour="#000000", line=True)),
        (vec, LegendItem(label="fp32 vector peak + DRAM", colour="#808080", line=True, dash="6 4")),
    )
    roof_lines = []
    for top_rate, item in roofs:
        corners = [x_lo, *([top_rate / bw] if x_lo < top_rate / bw < x_hi else []), x_hi]
        line = [(sx.px(x), sy.px(min(top_rate, bw * x))) for x in corners]
        svg.polyline(line, stroke=item.colour, width=1.5 if not item.dash else 1.2, dash=item.dash)
        roof_lines.append(line)
    dots = [(sx.px(x), sy.px(rate)) for _, x, rate in points]
    colours = [colour for _, _, colour in listing]
    for (px, py), colour in zip(dots, colours, strict=True):
        svg.circle(px, py, _DOT, fill=colour)
    labels = [(text, (sx.px(x), sy.px(rate))) for text, (x, rate) in point_labels([(x, r) for _, x, r in points])]
    roof_segments = [(a, b) for line in roof_lines for a, b in pairwise(line)]
    frame = (left, top, left + plot_w, bottom)
    for (text, _), (lx, ly, anchor) in zip(labels, _place_labels(labels, dots, roof_segments, frame), strict=True):
        # in the colour of its (first) point, so a label set beside another point still reads as its own
        colour = colours[int(text.split(",", 1)[0]) - 1]
        svg.text(lx, ly, text, size=_SMALL, anchor=anchor, fill=colour, halo=True)
    for k, (number, text, colour) in enumerate(listing):
        row_y = top + 8 + k * 18
        svg.text(list_x + 16, row_y, number, size=11, anchor="end", fill=colour)
        svg.text(list_x + 26, row_y, text, size=11, fill=colour)
    items = [item for _, item in roofs]
    legend_row(svg, items, centre=left + plot_w / 2, y=below + 12)
    svg.height = max(below + 24, top + 8 + len(listing) * 18) + _PAD
    return svg.to_bytes()


_PLACES = (
    *((6, dy, "start") for dy in (-8, 10)),  # above right, below right
    *((-6, dy, "end") for dy in (-8, 10)),  # above left, below left
    (8, 0, "start"),  # right
    (-8, 0, "end"),  # left
    (0, 12, "middle"),  # below
    (0, -12, "middle"),  # above
    *(
        (dx, dy, anchor)
        for up, down in ((20, 22), (32, 34))
        for dx, anchor in ((6, "start"), (-6, "end"))
        for dy in (-up, down)
    ),
)
"""Where a point label may go, (dx, dy of its middle, anchor) from its point, in order of preference: beside the
point (above right, below right, above left, below left, right, left, below, above), then further up and down (past
a roof line near it)."""
_ROOF_CLEARANCE = 2.0
"""px a label box keeps from a roof line (half the line's width and the label's white halo)."""


def _place_labels(
    labels: Sequence[tuple[str, tuple[float, float]]],
    dots: Sequence[tuple[float, float]],
    roofs: Sequence[tuple[tuple[float, float], tuple[float, float]]],
    frame: tuple[float, float, float, float],
) -> list[tuple[float, float, str]]:
    """(x, y middle, anchor) of each point label: the first of :data:`_PLACES` whose box stays inside the plot
    ``frame`` and touches no dot, no label placed before it and no roof segment (kept :data:`_ROOF_CLEARANCE` px
    away); when none is free, the one with the fewest such conflicts (the earlier on a tie)."""
    taken = [(x - _DOT, y - _DOT, x + _DOT, y + _DOT) for x, y in dots]
    placed = []
    for text, (x, y) in labels:
        w = text_width(text, _SMALL)
        boxes = []
        for dx, dy, anchor in _PLACES:
            lx = x + dx - {"start": 0.0, "middle": w / 2, "end": w}[anchor]
            boxes.append((lx, y + dy - _SMALL / 2, lx + w, y + dy + _SMALL / 2))
        k = min(range(len(_PLACES)), key=lambda k: (_conflicts(boxes[k], taken, roofs, frame), k))
        dx, dy, anchor = _PLACES[k]
        placed.append((x + dx, y + dy, anchor))
        taken.append(boxes[k])
    return placed


def _conflicts(
    box: tuple[float, float, float, float],
    taken: Sequence[tuple[float, float, float, float]],
    roofs: Sequence[tuple[tuple[float, float], tuple[float, float]]],
    frame: tuple[float, float, float, float],
) -> int:
    """How many boxes in ``taken`` and roof segments ``box`` touches, plus one when it leaves the ``frame``."""
    c = _ROOF_CLEARANCE
    near = (box[0] - c, box[1] - c, box[2] + c, box[3] + c)
    outside = not (frame[0] <= box[0] and box[2] <= frame[2] and frame[1] <= box[1] and box[3] <= frame[3])
    return sum(_overlap(box, other) for other in taken) + sum(_crosses(near, a, b) for a, b in roofs) + outside


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crosses(box: tuple[float, float, float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when the segment from ``a`` to ``b`` passes through ``box`` (left, top, right, bottom): the part of the
    segment left after clipping it to the box's four sides is not empty (Liang-Barsky clipping)."""
    (dx, dy), (enter, leave) = (b[0] - a[0], b[1] - a[1]), (0.0, 1.0)
    for p, q in ((-dx, a[0] - box[0]), (dx, box[2] - a[0]), (-dy, a[1] - box[1]), (dy, box[3] - a[1])):
        if p == 0:
            if q < 0:  # parallel to this side and outside it
                return False
        elif p < 0:
            enter = max(enter, q / p)
        else:
            leave = min(leave, q / p)
    return enter <= leave


def _spaced_decades(scale: LogScale) -> list[tuple[float, str]]:
    """(px, label) of the x axis's decades, thinned until neighbouring labels are 8 px apart at least."""
    for most in range(9, 1, -1):
        ticks = [(scale.px(v), _decade_text(v)) for v in scale.decades(most)]
        halves = [text_width(label, 11) / 2 for _, label in ticks]
        gaps = [b[0] - a[0] - wa - wb for a, b, wa, wb in zip(ticks, ticks[1:], halves, halves[1:], strict=False)]
        if all(gap >= 8 for gap in gaps):
            return ticks
    return ticks


def _decade(value: float, *, down: bool) -> float:
    """The power of ten at or below (``down``) or at or above ``value``."""
    exponent = math.log10(value)
    return 10.0 ** (math.floor(exponent + 1e-9) if down else math.ceil(exponent - 1e-9))


def _decade_text(value: float) -> str:
    """A power of ten as plain decimals: ``0.01``, ``1``, ``1,000``."""
    exponent = round(math.log10(value))
    return f"{value:,.0f}" if exponent >= 0 else f"{value:.{-exponent}f}"


_DRAWERS: Mapping[str, Callable[[Mapping[str, Any]], bytes]] = {
    "stage_times": _stage_times,
    "category_shares": _category_shares,
    "roofline": _roofline,
}
"""The drawer of each report figure, by stem (the stems of :func:`~llm_perf_opt.report.plot_data.plot_specs`)."""
