"""The report's plots, drawn once per distinct figure: each figure's bytes are cached under a hash of exactly what
it draws (:class:`~llm_perf_opt.report.plot_data.PlotSpec`), the code that draws it and the plotting libraries'
versions, so a rerun whose plots are unchanged neither imports matplotlib nor draws.  The bytes are the ones
:func:`~llm_perf_opt.report.plots.draw_plot` returns (deterministic), so a cached report equals a drawn one."""

from __future__ import annotations

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.plot_data import plot_specs
from llm_perf_opt.tracecache.figures import FigureCache, figure_key

__all__ = ["PLOT_CODE", "PLOT_LIBRARIES", "report_plots"]

PLOT_CODE = ("report/plots.py", "report/humanize.py")
"""Files (under ``llm_perf_opt``) whose code turns a plot spec into bytes: the drawers and style, the number
formats of the labels."""

PLOT_LIBRARIES = ("matplotlib", "pillow", "numpy")
"""Distributions whose versions decide a figure's bytes (drawing, PNG encoding, the arrays underneath)."""


def report_plots(result: AnalysisResult, *, cache: FigureCache | None = None) -> dict[str, bytes]:
    """``plots/<stem>.{png,svg}`` of every report figure: read from ``cache`` when it holds the figure, else drawn
    (and stored there); with no cache, all drawn."""
    files: dict[str, bytes] = {}
    for spec in plot_specs(result):
        key = figure_key(stem=spec.stem, data=spec.data, code=PLOT_CODE, libraries=PLOT_LIBRARIES)
        hit = cache.load(key) if cache is not None else None
        if hit is None:
            # matplotlib (~0.5 s, ~35 MB) loads only when a figure must be drawn, after a cold trace has freed its
            # memory (which keeps analyze's peak RSS down)
            # lazy: matplotlib, only on a figure cache miss
            from llm_perf_opt.report.plots import draw_plot

            hit = draw_plot(spec)
            if cache is not None:
                cache.store(key, hit)
        files.update(hit)
    return files
