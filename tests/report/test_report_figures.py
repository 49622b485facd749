"""Report plots through the figure cache: the same bytes as drawing, no drawing (no matplotlib) on a hit, a new
figure when what it draws changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
from report_fixture import small_result

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report import figures, plots
from llm_perf_opt.report.figures import report_plots
from llm_perf_opt.report.plot_data import plot_specs
from llm_perf_opt.tracecache.figures import FigureCache


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return small_result()


def test_cached_plots_equal_drawn_ones_and_a_hit_draws_nothing(
    result: AnalysisResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FigureCache(tmp_path)
    drawn = report_plots(result, cache=cache)
    assert drawn == plots.render_plots(result)
    assert len(cache.entries()) == 3

    def refuse(*_args: object) -> dict[str, bytes]:
        raise AssertionError("drew a figure the cache holds")

    monkeypatch.setattr(plots, "draw_plot", refuse)
    assert report_plots(result, cache=cache) == drawn


def test_changed_data_is_a_new_figure(result: AnalysisResult, tmp_path: Path) -> None:
    cache = FigureCache(tmp_path)
    report_plots(result, cache=cache)
    other = attrs.evolve(result, stages=attrs.evolve(result.stages, prefill_s=result.stages.prefill_s * 2))
    files = report_plots(other, cache=cache)
    assert len(cache.entries()) == 4  # only the stage-times figure draws TTFT and end to end
    assert files == plots.render_plots(other)


def test_every_spec_names_its_drawer_and_is_json(result: AnalysisResult) -> None:
    specs = plot_specs(result)
    assert [s.stem for s in specs] == ["stage_times", "category_shares", "roofline"]
    keys = {
        figures.figure_key(stem=s.stem, data=s.data, code=figures.PLOT_CODE, libraries=figures.PLOT_LIBRARIES)
        for s in specs
    }
    assert len(keys) == 3


def test_a_warm_report_imports_no_matplotlib(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from report_fixture import small_result
        from llm_perf_opt.report.figures import report_plots
        from llm_perf_opt.tracecache.figures import FigureCache
        result = small_result()
        assert "matplotlib" not in sys.modules
        report_plots(result, cache=FigureCache({str(tmp_path)!r}))
        assert "matplotlib" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    warm = script.replace('assert "matplotlib" in sys.modules', 'assert "matplotlib" not in sys.modules')
    subprocess.run([sys.executable, "-c", warm], check=True)
