"""The SVG writer: escaping, fixed number format, nice ticks, scales, wrapping, a well-formed document."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from llm_perf_opt.report.svg import (
    LegendItem,
    LinearScale,
    LogScale,
    Svg,
    axis_bottom,
    escape,
    legend_row,
    legend_width,
    nice_step,
    nice_ticks,
    num,
    text_width,
    tick_text,
    wrap,
)


def test_numbers_have_two_decimals_at_most_and_no_negative_zero() -> None:
    assert [num(v) for v in (1.0, 2.5, 1 / 3, -0.001, 1234.5678, 0.0)] == ["1", "2.5", "0.33", "0", "1234.57", "0"]


def test_escape_covers_markup_and_quotes() -> None:
    assert escape('a < b & "c" > d') == "a &lt; b &amp; &quot;c&quot; &gt; d"


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0, 7.3, [0, 2, 4, 6]),  # span 7.3 / 6 steps = 1.22 -> 2
        (0, 100, [0, 20, 40, 60, 80, 100]),  # 100 / 6 = 16.7 -> 20
        (0, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 6183, [0, 2000, 4000, 6000]),  # 6183 / 6 = 1030.5 -> 2000
    ],
)
def test_nice_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi) == ticks


def test_nice_step_is_one_two_two_and_a_half_or_five_times_a_power_of_ten() -> None:
    assert nice_step(6183) == 2000  # 6183 / 6 = 1030.5 -> the next of 1, 2, 2.5, 5 x 1000
    assert nice_step(125) == 25  # 125 / 6 = 20.8 -> 25
    assert nice_step(0) == 1.0
    assert tick_text(2000, 2000) == "2,000" and tick_text(0.25, 0.25) == "0.25" and tick_text(0.5, 0.25) == "0.50"


def test_scales_map_ends_and_decades() -> None:
    lin = LinearScale(lo=0, hi=10, start=100, end=300)
    assert (lin.px(0), lin.px(5), lin.px(10)) == (100, 200, 300)
    log = LogScale(lo=0.01, hi=1e4, start=0, end=600)
    assert log.px(1) == pytest.approx(200) and log.px(1e4) == pytest.approx(600)
    assert log.decades() == [0.01, 0.1, 1, 10, 100, 1000, 10000]
    wide = LogScale(lo=1e6, hi=1e16, start=0, end=1)
    assert wide.decades() == [1e6, 1e8, 1e10, 1e12, 1e14, 1e16]  # 11 decades > 9: every second one


def test_text_width_estimate_and_wrap() -> None:
    assert text_width("", 12) == 0
    assert text_width("mmm", 10) > text_width("iii", 10) * 3
    # DejaVu Sans advances (em): t .392 i .278 m .974 e .615 space .318 p .635 r .411 o .612 u .634 k .579;
    # "time per output toke" = 10.371 em = 124.5 px at 12 px: the estimate is at most 8% wider, never narrower
    assert 124.5 <= text_width("time per output toke", 12) <= 124.5 * 1.08
    lines = wrap("Roofline on a very long device name indeed", width=120, size=12)
    assert " ".join(lines) == "Roofline on a very long device name indeed" and len(lines) > 1
    assert all(text_width(line, 12) <= 120 for line in lines)
    assert wrap("unbreakable", width=10, size=12) == ["unbreakable"]


def test_document_is_well_formed_and_deterministic() -> None:
    def draw() -> bytes:
        svg = Svg(200, 100)
        svg.rect(1, 2, 3, 4, fill="#123456")
        svg.line(0, 0, 10, 10, dash="4 2")
        svg.polyline([(0, 0), (1.005, 2)], stroke="#000000")
        svg.circle(5, 5, 2, fill="red")
        svg.text(10, 20, "a < b & c", rotate=True)
        axis_bottom(svg, [(10, "0"), (90, "1")], x0=10, x1=90, y=80, title="x")
        items = [
            LegendItem(label="box", colour="#111111"),
            LegendItem(label="dash", colour="#222", line=True, dash="3 3"),
        ]
        legend_row(svg, items, centre=100, y=95)
        return svg.to_bytes()

    data = draw()
    assert data == draw()
    root = ET.fromstring(data)
    assert (root.attrib["width"], root.attrib["height"], root.attrib["viewBox"]) == ("200", "100", "0 0 200 100")
    assert next(el.text for el in root.iter("{http://www.w3.org/2000/svg}text")) == "a < b & c"
    assert b'points="0,0 1,2"' in data  # 1.005 written with two decimals: 1.00 -> 1
    assert legend_width([LegendItem(label="", colour="#000")]) == 22 + 6
