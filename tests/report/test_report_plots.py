"""Report plots: the six files, valid PNG/SVG, byte-identical run to run, no date or version inside."""

from __future__ import annotations

import pytest
from report_fixture import small_result, sweep_costs

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf.sweep import SweepSpec, run_sweep
from llm_perf_opt.report.plots import heaviest_leaves, render_plots, render_sweep_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return small_result()


@pytest.fixture(scope="module")
def files(result: AnalysisResult) -> dict[str, bytes]:
    return render_plots(result)


def test_six_files_png_and_svg(files: dict[str, bytes]) -> None:
    stems = ("stage_times", "category_shares", "roofline")
    assert sorted(files) == sorted(f"plots/{s}.{ext}" for s in stems for ext in ("png", "svg"))
    for name, data in files.items():
        if name.endswith(".png"):
            assert data.startswith(PNG_MAGIC)
        else:
            assert data.lstrip().startswith(b"<?xml") and b"<svg" in data


def test_bytes_identical_run_to_run(result: AnalysisResult, files: dict[str, bytes]) -> None:
    assert render_plots(small_result()) == files


def test_no_date_or_software_version_in_metadata(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert b"<dc:date>" not in data, name
        assert b"Matplotlib v" not in data and b"Matplotlib version" not in data, name


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
