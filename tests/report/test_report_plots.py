"""Report figures: three SVG files drawn without matplotlib, well-formed XML, byte-identical run to run, showing
the numbers report.md shows; and the sweep plot (matplotlib)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import attrs
import pytest
from report_fixture import small_result, sweep_costs

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf.sweep import SweepSpec, run_sweep
from llm_perf_opt.report.figures import draw_plot, report_plots
from llm_perf_opt.report.humanize import fmt_ms
from llm_perf_opt.report.markdown import render_report_md
from llm_perf_opt.report.plot_data import PlotSpec, heaviest_leaves, plot_specs, point_labels, short_id
from llm_perf_opt.report.plots import render_sweep_plot
from llm_perf_opt.report.svg import text_width

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return small_result()


@pytest.fixture(scope="module")
def files(result: AnalysisResult) -> dict[str, bytes]:
    return report_plots(result)


def texts(data: bytes) -> list[str]:
    return [el.text or "" for el in ET.fromstring(data).iter(f"{SVG}text")]


def test_three_svg_files_that_parse(files: dict[str, bytes]) -> None:
    assert sorted(files) == ["plots/category_shares.svg", "plots/roofline.svg", "plots/stage_times.svg"]
    for name, data in files.items():
        assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), name
        root = ET.fromstring(data)
        assert root.tag == f"{SVG}svg"
        width, height = float(root.attrib["width"]), float(root.attrib["height"])
        assert root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}"
        assert width >= 800 and 150 < height < 1000, name
        assert root.attrib["font-family"] == "DejaVu Sans, Arial, sans-serif"


def test_bytes_identical_run_to_run(files: dict[str, bytes]) -> None:
    assert report_plots(small_result()) == files


def test_stage_figure_shows_the_reports_ttft_tpot_and_end_to_end(
    result: AnalysisResult, files: dict[str, bytes]
) -> None:
    s = result.stages
    report = render_report_md(result)
    shown = texts(files["plots/stage_times.svg"])
    ttft, tpot, e2e = fmt_ms(s.ttft_s), fmt_ms(s.tpot_s), fmt_ms(s.end_to_end_s)
    assert f"time to first token {ttft}" in report and f"decode steps of {tpot} (TPOT)" in report
    assert f"TTFT {ttft} (vision + projector + prefill)" in shown
    assert f"TPOT {tpot} (mean of {s.decode_steps} decode steps)" in shown
    assert f"End to end {e2e}: stage totals, split by bound" in shown
    assert f"decode ({s.decode_steps} steps)" in shown
    assert {"compute-bound", "memory-bound", "launch overhead"} <= set(shown)


def time_table_cells(report: str) -> dict[str, str]:
    """report.md's Time table: first cell -> "time (share)"."""
    table = report.split("## Time\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    cells = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {row[0].strip(): f"{row[1].strip()} ({row[2].strip()})" for row in cells}


@pytest.mark.parametrize(
    "change",
    [
        {},
        # the QA case: a 0.101 ms projector read "0.1010 ms" beside "91.8 us" elsewhere, report.md "0.101 ms"
        {"projector_s": 1.01e-4, "decode_steps": 7489},
        {"projector_s": 9.18e-5, "decode_s": 90.14},  # a 90 s decode: the table reads the projector "0.092 ms"
    ],
)
def test_stage_bars_read_as_the_reports_time_table(result: AnalysisResult, change: dict[str, float]) -> None:
    """Each stage's bar label is its cell in report.md's Time table (same unit, decimals and share), decode steps
    thousands-separated as the table writes them."""
    changed = attrs.evolve(result, stages=attrs.evolve(result.stages, **change))
    cells = time_table_cells(render_report_md(changed))
    shown = texts(report_plots(changed)["plots/stage_times.svg"])
    steps = changed.stages.decode_steps
    names = {
        "Vision (SAM + CLIP)": "vision",
        "Projector + injection": "projector",
        "Prefill": "prefill",
        f"Decode, {steps:,} steps": f"decode ({steps:,} steps)",
    }
    for row, bar in names.items():
        assert bar in shown and cells[row] in shown, (row, cells[row])
        assert shown.index(cells[row]) == shown.index(bar) + 1  # the label at the end of that bar
    if "projector_s" in change:
        assert cells["Projector + injection"].startswith(f"{change['projector_s'] * 1e3:.3f} ms")


def test_no_decode_step_draws_no_tpot_bar(result: AnalysisResult) -> None:
    (spec, *_) = plot_specs(result)
    data = {**spec.data, "decode_steps": 0, "rows": [r for r in spec.data["rows"] if not r[0].startswith("decode")]}
    shown = texts(draw_plot(PlotSpec(stem="stage_times", data=data))["plots/stage_times.svg"])
    assert "time to first token" in shown and "time per output token" not in shown
    assert not any(t.startswith("TPOT") or t.startswith("decode") for t in shown)


def test_roofline_numbers_every_point_and_lists_its_id(result: AnalysisResult, files: dict[str, bytes]) -> None:
    shown = texts(files["plots/roofline.svg"])
    leaves = heaviest_leaves(result)
    for k, nid in enumerate(leaves, 1):
        assert str(k) in shown and short_id(nid) in shown
    root = ET.fromstring(files["plots/roofline.svg"])
    assert len(list(root.iter(f"{SVG}circle"))) == len(leaves)
    assert len(list(root.iter(f"{SVG}polyline"))) == 2  # the matmul and the vector roof


def test_a_roofline_with_one_point_or_none(result: AnalysisResult) -> None:
    spec = plot_specs(result)[2]
    for points in (spec.data["points"][:1], []):
        data = draw_plot(PlotSpec(stem="roofline", data={**spec.data, "points": points}))["plots/roofline.svg"]
        root = ET.fromstring(data)
        assert len(list(root.iter(f"{SVG}circle"))) == len(points)
        ids = {short_id(nid) for nid, _, _ in spec.data["points"]}
        assert [t for t in texts(data) if t in ids] == [short_id(nid) for nid, _, _ in points]


def test_category_figure_has_a_row_per_category(result: AnalysisResult, files: dict[str, bytes]) -> None:
    data = plot_specs(result)[1].data
    shown = texts(files["plots/category_shares.svg"])
    assert all(cat in shown for cat in data["categories"])
    assert {"time", "FLOPs", "bytes"} <= set(shown)
    bars = [
        r for r in ET.fromstring(files["plots/category_shares.svg"]).iter(f"{SVG}rect") if r.attrib["height"] == "9"
    ]
    nonzero = sum(v > 0 for key in ("time", "flops", "bytes") for v in data[key])
    assert len(bars) == nonzero


def text_boxes(data: bytes) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(text, (left, top, right, bottom)) of every horizontal text, by the width estimate the layout uses."""
    boxes = []
    for el in ET.fromstring(data).iter(f"{SVG}text"):
        if "transform" in el.attrib:
            continue
        size = float(el.attrib["font-size"])
        x, mid, w = float(el.attrib["x"]), float(el.attrib["y"]) - 0.35 * size, text_width(el.text or "", size)
        left = {"start": x, "middle": x - w / 2, "end": x - w}[el.attrib["text-anchor"]]
        boxes.append((el.text or "", (left, mid - size / 2, left + w, mid + size / 2)))
    return boxes


def assert_readable(name: str, data: bytes) -> None:
    """Every text inside the canvas and no two texts overlapping (0.5 px slack)."""
    root = ET.fromstring(data)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    boxes = text_boxes(data)
    for text, (left, top, right, bottom) in boxes:
        assert left >= 0 and right <= width and top >= 0 and bottom <= height, (name, text)
    for i, (a, (al, at, ar, ab)) in enumerate(boxes):
        for b, (bl, bt, br, bb) in boxes[i + 1 :]:
            assert not (al < br - 0.5 and bl < ar - 0.5 and at < bb - 0.5 and bt < ab - 0.5), (name, a, b)


def test_labels_stay_on_the_canvas_and_apart(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert_readable(name, data)


def _roofline_spec(
    device: str, dtype: str, peaks: tuple[float, float, float], points: list[tuple[str, float, float]]
) -> PlotSpec:
    matmul, vector, bandwidth = peaks
    data = {"matmul_peak": matmul, "vector_peak": vector, "bandwidth": bandwidth, "points": [list(p) for p in points]}
    return PlotSpec(stem="roofline", data={**data, "dtype": dtype, "device": device, "runtime_timed": False})


_VISION = "vision/model.sam_model.blocks.{0,1,3,4,6,7,9,10}"
_EXPERTS = "model.layers.{1..11}.mlp.experts.{0..63}"
QA_ROOFLINES = {
    # plot_data.roofline_data of two QA runs (4 significant digits) whose labels were drawn across a roof line
    "analyze --dtype fp32": _roofline_spec(
        "NVIDIA H100 SXM5 80GB",
        "fp32",
        (66.9e12, 66.9e12, 3.35e12),
        [
            (f"{_VISION}.mlp.lin1", 275.1, 3.950e13),
            (f"{_VISION}.mlp.lin2", 275.0, 3.950e13),
            (f"{_VISION}.attn.qkv", 262.8, 3.939e13),
            ("projector/model.projector.layers", 115.8, 3.255e13),
            (f"prefill/{_EXPERTS}.down_proj", 29.29, 1.098e13),
            (f"prefill/{_EXPERTS}.gate_proj", 29.29, 1.098e13),
            (f"prefill/{_EXPERTS}.up_proj", 29.29, 1.098e13),
            ("decode/model.layers.{1..11}.self_attn.rotary_emb", 0.04228, 6.400e6),
            ("decode/model.layers.{1..11}.input_layernorm", 0.05264, 6.401e7),
            ("decode/model.layers.{1..11}.post_attention_layernorm", 0.05264, 6.401e7),
        ],
    ),
    "analyze --workload dsocr-a4-300dpi-gundam-m-v1 --device l4 --runtime vllm --batch 16": _roofline_spec(
        "NVIDIA L4 24GB",
        "bf16",
        (121e12, 30.3e12, 300e9),
        [
            (f"{_VISION}.mlp.lin1", 591.3, 7.175e13),
            (f"{_VISION}.mlp.lin2", 591.0, 7.185e13),
            (f"{_VISION}.attn.qkv", 558.7, 7.165e13),
            ("projector/model.projector.layers", 434.3, 6.348e13),
            ("prefill/lm_head", 1220.0, 7.260e13),
            (f"prefill/{_EXPERTS}.down_proj", 448.8, 6.572e13),
            (f"prefill/{_EXPERTS}.gate_proj", 448.8, 6.572e13),
            (f"decode/{_EXPERTS}.down_proj", 1.496, 1.757e11),
            (f"decode/{_EXPERTS}.gate_proj", 1.496, 1.757e11),
            (f"decode/{_EXPERTS}.up_proj", 1.496, 1.757e11),
        ],
    ),
}


@pytest.mark.parametrize("spec", QA_ROOFLINES.values(), ids=list(QA_ROOFLINES))
def test_point_labels_keep_off_the_roof_lines_and_the_dots(spec: PlotSpec) -> None:
    """Every point label's box (by the layout's width estimate) stays 1 px clear of both roof polylines - checked by
    walking each segment in 0.25 px steps - and of every dot, and no two texts overlap."""
    data = draw_plot(spec)["plots/roofline.svg"]
    root = ET.fromstring(data)
    segments = []
    for line in root.iter(f"{SVG}polyline"):
        corners = [tuple(map(float, xy.split(","))) for xy in line.attrib["points"].split()]
        segments += list(pairwise(corners))
    labels = [
        (el.text, box)
        for el, (_, box) in zip(
            [el for el in root.iter(f"{SVG}text") if "transform" not in el.attrib], text_boxes(data), strict=True
        )
        if "stroke" in el.attrib  # the point labels (drawn with a white halo)
    ]
    assert len(labels) == len(point_labels([(x, y) for _, x, y in spec.data["points"]]))
    for text, (left, top, right, bottom) in labels:
        for (ax, ay), (bx, by) in segments:
            steps = max(1, int(max(abs(bx - ax), abs(by - ay)) * 4))
            for i in range(steps + 1):
                x, y = ax + (bx - ax) * i / steps, ay + (by - ay) * i / steps
                assert not (left - 1 < x < right + 1 and top - 1 < y < bottom + 1), (text, (x, y))
        for dot in root.iter(f"{SVG}circle"):
            cx, cy, r = (float(dot.attrib[k]) for k in ("cx", "cy", "r"))
            assert not (left < cx + r and cx - r < right and top < cy + r and cy - r < bottom), (text, cx, cy)
    assert_readable("roofline", data)


def test_roofline_rate_ticks_read_alike() -> None:
    """Decades on the rate axis read 1, 10 or 100 of a prefix: ``1 TFLOP/s`` beside ``10 PFLOP/s``, never
    ``1.0 TFLOP/s``."""
    for spec in QA_ROOFLINES.values():
        ticks = [t for t in texts(draw_plot(spec)["plots/roofline.svg"]) if t.endswith("FLOP/s")]
        assert len(ticks) >= 4 and "1 TFLOP/s" in ticks
        assert all(re.fullmatch(r"(1|10|100) [kMGTP]?FLOP/s", t) for t in ticks), ticks


def test_a_wide_intensity_range_thins_the_axis_labels(result: AnalysisResult) -> None:
    spec = plot_specs(result)[2]
    points = [["decode/a", 1e-5, 1e6], ["prefill/b", 1e7, 1e14]]
    data = draw_plot(PlotSpec(stem="roofline", data={**spec.data, "points": points}))["plots/roofline.svg"]
    assert_readable("wide roofline", data)
    shown = texts(data)  # 14 decades (1e-6 .. 1e8) on 380 px: every third one is labelled, in plain decimals
    assert [t for t in shown if t in ("0.000001", "0.001", "1", "1,000", "1,000,000")][:5] == [
        "0.000001",
        "0.001",
        "1",
        "1,000",
        "1,000,000",
    ]
    assert "0.00001" not in shown and "10,000,000" not in shown


def test_long_device_names_wrap_the_title(result: AnalysisResult) -> None:
    spec = plot_specs(result)[2]
    name = "A Very Long Accelerator Name With Many Words " * 3
    data = draw_plot(PlotSpec(stem="roofline", data={**spec.data, "device": name.strip()}))["plots/roofline.svg"]
    title_lines = [t for t in texts(data) if "Roofline" in t or "Accelerator" in t]
    assert len(title_lines) >= 2


def test_changed_data_changes_only_its_figure(result: AnalysisResult, files: dict[str, bytes]) -> None:
    other = attrs.evolve(result, stages=attrs.evolve(result.stages, prefill_s=result.stages.prefill_s * 2))
    again = report_plots(other)
    changed = sorted(name for name in files if files[name] != again[name])
    assert changed == ["plots/stage_times.svg"]


def test_analyze_imports_no_matplotlib(tmp_path: Path) -> None:
    """A warm analyze (the trace cached by a first run in this process) in a fresh process: report written, neither
    torch nor matplotlib imported."""
    from click.testing import CliRunner

    from llm_perf_opt.cli import cli

    tiny = ["analyze", "--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4"]
    cold = CliRunner().invoke(cli, [*tiny, "--quiet", "--out", str(tmp_path / "cold")])
    assert cold.exit_code == 0, cold.output
    script = textwrap.dedent(
        f"""
        import sys
        from llm_perf_opt.cli import main
        try:
            main({[*tiny, "--quiet", "--device", "a100-80gb", "--out", str(tmp_path / "warm")]!r})
        except SystemExit as exc:
            assert not exc.code, exc.code
        print("matplotlib" in sys.modules, "torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.splitlines()[-1] == "False False"  # after the path analyze prints
    assert (tmp_path / "warm" / "plots" / "roofline.svg").is_file()


def test_roofline_shows_each_stages_slowest_leaves(result: AnalysisResult) -> None:
    leaves = heaviest_leaves(result, per_stage=2)
    stages = [n.split("/", 1)[0] for n in leaves]
    assert stages == ["vision", "vision", "projector", "prefill", "prefill", "decode", "decode"]
    for stage in set(stages):
        times = [result.timed.nodes[n].total_s for n in leaves if n.startswith(stage + "/")]
        assert times == sorted(times, reverse=True)
    assert all(not result.trace.nodes[n].children for n in leaves)
    assert leaves[-2] == "decode/model.layers.{1..11}"  # the slowest leaf of the fixture (launch-bound decode)


def test_sweep_plot_is_deterministic() -> None:
    spec = SweepSpec(
        devices=["h100-sxm", "a100-80gb"],
        pages=[("base", (1024, 1024))],
        batch_sizes=[1, 4],
        max_new_tokens=[64],
        dtypes=["bf16"],
    )
    rows = run_sweep(spec, cost_fn=sweep_costs).rows
    first, second = render_sweep_plot(rows), render_sweep_plot(rows)
    assert sorted(first) == ["sweep.png", "sweep.svg"] and first == second


def test_one_naming_rule_for_module_ids() -> None:
    """Stage, then up to three path units (a group index stays with its container), ``…`` for what is left out."""
    from llm_perf_opt.report.plot_data import short_id

    assert short_id("prefill/model.layers.{1..11}.mlp.experts.{0..63}.down_proj") == (
        "prefill …mlp.experts.{0..63}.down_proj"
    )
    assert short_id("vision/model.sam_model.blocks.{0,1,3,4,6,7,9,10}.mlp.lin1") == (
        "vision …blocks.{0,1,3,4,6,7,9,10}.mlp.lin1"
    )
    assert short_id("projector/model.projector.layers") == "projector model.projector.layers"
    assert short_id("decode/lm_head") == "decode lm_head"
    long = short_id("decode/model.layers.{1..11}.post_attention_layernorm")
    assert long == "decode …post_attention_layernorm" and len(long) <= 46


def test_roofline_labels_of_coinciding_points_are_merged() -> None:
    from llm_perf_opt.report.plot_data import point_labels

    labels = point_labels([(500.0, 4e14), (510.0, 4.1e14), (60.0, 1e13), (500.0, 4e14), (0.1, 6e7)])
    assert [text for text, _ in labels] == ["1,2,4", "3", "5"]


def test_stage_chart_draws_decode_as_a_stage_total(result: AnalysisResult) -> None:
    from llm_perf_opt.report.plot_data import stage_rows

    rows = stage_rows(result)
    assert rows[-1][0] == f"decode ({result.stages.decode_steps} steps)"
    total = sum(sum(parts) for _, *parts, _ in rows)
    assert total == pytest.approx(result.stages.end_to_end_s, rel=1e-9)
    assert max(rows, key=lambda row: sum(row[1:]))[0].startswith("decode")  # the 98% stage is the longest bar


def test_sweep_best_is_the_best_configuration_that_fits() -> None:
    from attrs import evolve

    from llm_perf_opt.report.plots import best_fitting

    spec = SweepSpec(
        devices=["h100-sxm"],
        pages=[("base", (1024, 1024))],
        batch_sizes=[1, 4, 16],
        max_new_tokens=[64],
        dtypes=["bf16"],
    )
    rows = list(run_sweep(spec, cost_fn=sweep_costs).rows)
    assert best_fitting(rows).batch_size == 16
    rows[-1] = evolve(rows[-1], fits=False)  # the fastest one no longer fits: it is not the best
    assert best_fitting(rows).batch_size == 4
    assert best_fitting([evolve(r, fits=False) for r in rows]) is None
