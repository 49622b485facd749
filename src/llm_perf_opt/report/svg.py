"""A small SVG writer for the report figures (no plotting library): a document of rectangles, lines, polylines,
circles and escaped text, linear and log10 scales with "nice" ticks, axes and a legend row.

Deterministic bytes: every coordinate is written by :func:`num` (two decimals at most), elements appear in drawing
order, there are no ids, dates or generator comments.  Text is laid out by an estimate of its width
(:func:`text_width`: DejaVu Sans advance widths rounded into a few classes) since no font is measured; callers size
margins and panels from it so that labels neither overlap nor leave the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attrs import field, frozen

__all__ = [
    "FONT_FAMILY",
    "LegendItem",
    "LinearScale",
    "LogScale",
    "Svg",
    "axis_bottom",
    "axis_left",
    "escape",
    "legend_row",
    "legend_width",
    "nice_step",
    "nice_ticks",
    "num",
    "text_width",
    "tick_text",
    "wrap",
]

FONT_FAMILY = "DejaVu Sans, Arial, sans-serif"
"""The font every figure asks for (DejaVu Sans is what :func:`text_width` estimates)."""

_AXIS_COLOUR = "#333333"
_TEXT_COLOUR = "#222222"
_EM_CLASSES: tuple[tuple[str, float], ...] = (
    ("ijlI|", 0.28),
    (" .,:;'!", 0.33),
    ("ft()[]/-", 0.4),
    ("r", 0.42),
    ('csz"', 0.55),
    ("kvxyJ*?^", 0.6),
    ("w", 0.82),
    ("+=<>~", 0.84),
    ("%", 0.95),
    ("m…", 1.0),
    ("MW", 1.0),
)
_EM = {ch: em for chars, em in _EM_CLASSES for ch in chars}
"""Advance widths (em) of DejaVu Sans, rounded up into classes; digits, most other lowercase letters and ``_{}``
are 0.64 em, capitals 0.78 em."""
_MAX_TICKS = 7


def num(value: float) -> str:
    """A coordinate or size as written into the file: at most two decimals, no trailing zeros, never ``-0``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def escape(text: str) -> str:
    """``text`` safe inside an element or a double-quoted attribute."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def text_width(text: str, size: float) -> float:
    """Estimated width in px of ``text`` at font ``size`` px, from DejaVu Sans advance widths in a few classes
    (:data:`_EM`; 0.78 em for other capitals, 0.64 em for anything else), slightly on the wide side."""
    return size * sum(_EM.get(ch, 0.78 if ch.isupper() else 0.64) for ch in text)


def wrap(text: str, *, width: float, size: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` px (a single word wider than that stays whole)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        trial = f"{current} {word}" if current else word
        if current and text_width(trial, size) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    return [*lines, current]


def nice_step(span: float, max_ticks: int = _MAX_TICKS) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that splits ``span`` into at most ``max_ticks`` steps."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(max_ticks - 1, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        if mantissa * magnitude >= raw * (1 - 1e-9):
            return mantissa * magnitude
    return 10.0 * magnitude


def nice_ticks(lo: float, hi: float, max_ticks: int = _MAX_TICKS) -> list[float]:
    """Multiples of :func:`nice_step` from ``lo`` to ``hi`` inclusive (rounded so ``0.1 * 3`` reads 0.3)."""
    step = nice_step(hi - lo, max_ticks)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi * (1 + 1e-9) + 1e-12:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def tick_text(value: float, step: float) -> str:
    """A linear tick's label with as many decimals as the step needs and thousands separators: ``2,000``, ``0.25``."""
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return f"{value:,.{decimals}f}"


@frozen(kw_only=True)
class LinearScale:
    """``lo..hi`` (data) onto ``start..end`` (px; ``end < start`` for an upward axis)."""

    lo: float = field(metadata={"help": "data value at start"})
    hi: float = field(metadata={"help": "data value at end (> lo)"})
    start: float = field(metadata={"help": "px of lo"})
    end: float = field(metadata={"help": "px of hi"})

    def px(self, value: float) -> float:
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        """(value, label) of nice ticks inside the range."""
        step = nice_step(self.hi - self.lo)
        return [(v, tick_text(v, step)) for v in nice_ticks(self.lo, self.hi)]


@frozen(kw_only=True)
class LogScale:
    """``lo..hi`` (data, both > 0) onto ``start..end`` (px) in log10."""

    lo: float = field(metadata={"help": "data value at start (> 0)"})
    hi: float = field(metadata={"help": "data value at end (> lo)"})
    start: float = field(metadata={"help": "px of lo"})
    end: float = field(metadata={"help": "px of hi"})

    def px(self, value: float) -> float:
        low, high = math.log10(self.lo), math.log10(self.hi)
        return self.start + (math.log10(value) - low) / (high - low) * (self.end - self.start)

    def decades(self, max_ticks: int = 9) -> list[float]:
        """Powers of ten inside the range, every second or third one when there are more than ``max_ticks``."""
        first, last = math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi) + 1e-9)
        every = max(1, math.ceil((last - first + 1) / max_ticks))
        return [10.0**k for k in range(first, last + 1, every)]


@frozen(kw_only=True)
class LegendItem:
    """One legend entry: a filled box (``dash`` empty and ``line`` False), or a line sample (solid or dashed)."""

    label: str = field(metadata={"help": "text beside the swatch"})
    colour: str = field(metadata={"help": "fill or stroke colour"})
    line: bool = field(default=False, metadata={"help": "a line sample instead of a box"})
    dash: str = field(default="", metadata={"help": "stroke-dasharray of a line sample, empty for solid"})


class Svg:
    """One SVG document of a fixed ``width`` x ``height`` px; elements are appended in drawing order."""

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, *, fill: str) -> None:
        self.parts.append(f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" fill="{fill}"/>')

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        stroke: str = _AXIS_COLOUR,
        width: float = 1,
        dash: str = "",
    ) -> None:
        self.parts.append(
            f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" stroke="{stroke}" '
            f'stroke-width="{num(width)}"{_dash(dash)}/>'
        )

    def polyline(self, points: Sequence[tuple[float, float]], *, stroke: str, width: float = 1, dash: str = "") -> None:
        coords = " ".join(f"{num(x)},{num(y)}" for x, y in points)
        self.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="{num(width)}"{_dash(dash)}/>'
        )

    def circle(self, cx: float, cy: float, r: float, *, fill: str) -> None:
        self.parts.append(f'<circle cx="{num(cx)}" cy="{num(cy)}" r="{num(r)}" fill="{fill}"/>')

    def text(
        self,
        x: float,
        y: float,
        content: str,
        *,
        size: float = 12,
        anchor: str = "start",
        fill: str = _TEXT_COLOUR,
        middle: bool = True,
        rotate: bool = False,
        halo: bool = False,
    ) -> None:
        """``content`` at (x, y): y is the vertical middle of the text (``middle``) or its baseline; ``anchor``
        start, middle or end; ``rotate`` turns it to read upwards about (x, y); ``halo`` outlines it in white so a
        line under it does not cross the glyphs."""
        baseline = y + 0.35 * size if middle else y
        turn = f' transform="rotate(-90 {num(x)} {num(y)})"' if rotate else ""
        outline = ' stroke="#ffffff" stroke-width="3" paint-order="stroke"' if halo else ""
        self.parts.append(
            f'<text x="{num(x)}" y="{num(baseline)}" font-size="{num(size)}" text-anchor="{anchor}" '
            f'fill="{fill}"{turn}{outline}>{escape(content)}</text>'
        )

    def to_bytes(self) -> bytes:
        """The document: XML declaration, ``<svg>`` with width, height and viewBox, a white background."""
        w, h = num(self.width), num(self.height)
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="{FONT_FAMILY}">\n'
            f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>\n'
        )
        return (head + "".join(part + "\n" for part in self.parts) + "</svg>\n").encode("utf-8")


def _dash(dash: str) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


def axis_bottom(
    svg: Svg, ticks: Sequence[tuple[float, str]], *, x0: float, x1: float, y: float, title: str, size: float = 11
) -> float:
    """A horizontal axis line from ``x0`` to ``x1`` at ``y``, tick marks at the given px with their labels below,
    and ``title`` under them; returns the y just below the title."""
    svg.line(x0, y, x1, y)
    for px, label in ticks:
        svg.line(px, y, px, y + 4)
        svg.text(px, y + 6 + size / 2, label, size=size, anchor="middle")
    title_y = y + 10 + size + 4 + size / 2
    svg.text((x0 + x1) / 2, title_y, title, size=size + 1, anchor="middle")
    return title_y + size


def axis_left(
    svg: Svg, ticks: Sequence[tuple[float, str]], *, x: float, y0: float, y1: float, size: float = 11
) -> None:
    """A vertical axis line at ``x`` from ``y0`` to ``y1``, tick marks at the given px with right-aligned labels."""
    svg.line(x, y0, x, y1)
    for py, label in ticks:
        svg.line(x - 4, py, x, py)
        svg.text(x - 7, py, label, size=size, anchor="end")


def legend_width(items: Sequence[LegendItem], *, size: float = 11) -> float:
    """Width in px of :func:`legend_row` of ``items``."""
    return sum(_SWATCH + 6 + text_width(item.label, size) for item in items) + _GAP * max(len(items) - 1, 0)


def legend_row(svg: Svg, items: Sequence[LegendItem], *, centre: float, y: float, size: float = 11) -> None:
    """``items`` side by side, centred on ``centre``, vertically centred on ``y``."""
    x = centre - legend_width(items, size=size) / 2
    for item in items:
        if item.line:
            svg.line(x, y, x + _SWATCH, y, stroke=item.colour, width=2, dash=item.dash)
        else:
            svg.rect(x, y - 5, _SWATCH, 10, fill=item.colour)
        svg.text(x + _SWATCH + 6, y, item.label, size=size)
        x += _SWATCH + 6 + text_width(item.label, size) + _GAP


_SWATCH = 22
_GAP = 18
