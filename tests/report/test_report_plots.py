"""Report plots: the six files, valid PNG/SVG, byte-identical run to run, no date or version inside."""

from __future__ import annotations

import pytest
from report_fixture import small_result, sweep_costs

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.perf.sweep import SweepSpec, run_sweep
from llm_perf_opt.report.plot_data import heaviest_leaves
from llm_perf_opt.report.plots import render_plots, render_sweep_plot

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
    total = sum(sum(parts) for _, *parts in rows)
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
