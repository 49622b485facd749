"""Which model timed a report's stages, and each stage's time split by what bounds it, with its kernels and bytes.

One source for report.md, report.yaml and the plots, so every file shows the numbers of the model that made the
headline: the chosen runtime's kernel model (:attr:`RuntimeRun.bounds`) when it timed the request (every runtime
but ``hf-eager``, and any text-only request), else the traced op-by-op tree.  Per-module and per-category times exist
only for the op-by-op tree; where a runtime made the headline, :func:`eager_note` labels them as that breakdown.
"""

from __future__ import annotations

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_ms
from llm_perf_opt.runtimes.request import StageBound

__all__ = ["eager_note", "runtime_timed", "stage_bound", "time_table"]


def runtime_timed(r: AnalysisResult) -> bool:
    """True when the runtime's kernel model (not the traced op-by-op tree) timed the request's stages."""
    run = r.runtime_run
    return run is not None and not run.runtime.is_baseline


def time_table(r: AnalysisResult) -> list[tuple[str, float]]:
    """(row, seconds) of the time column of report.md's Time table, in row order: ``vision`` and ``projector`` (not
    for a text-only request: no encoder runs), ``prefill``, ``ttft``, ``decode`` and ``tpot`` (when there are decode
    steps), ``other`` (when it took time or was traced), ``end_to_end``.  The column is formatted as one
    (:func:`~llm_perf_opt.report.humanize.fmt_ms_column`: one unit, one number of decimals), and the stage figure
    labels its bars in the same column, so a stage reads the same in both."""
    s = r.stages
    rows = [(stage, getattr(s, f"{stage}_s")) for stage in ("vision", "projector", "prefill")]
    rows = rows[2:] if r.workload.text_only else rows
    rows.append(("ttft", s.ttft_s))
    if s.decode_steps:
        rows += [("decode", s.decode_s), ("tpot", s.tpot_s)]
    if s.other_s > 0 or "other" in r.trace.nodes:
        rows.append(("other", s.other_s))
    return [*rows, ("end_to_end", s.end_to_end_s)]


def stage_bound(r: AnalysisResult, stage: str) -> StageBound | None:
    """``stage``'s (compute, memory, overhead) seconds, kernels and bytes from the model that timed it."""
    if runtime_timed(r):
        assert r.runtime_run is not None
        return r.runtime_run.bounds.get(stage)
    timed, node = r.timed.nodes.get(stage), r.trace.nodes.get(stage)
    if timed is None or node is None:
        return None
    return StageBound(
        compute_s=timed.compute_bound_s,
        memory_s=timed.memory_bound_s,
        overhead_s=timed.overhead_s,
        kernels=float(node.cost.kernels),
        bytes=float(node.cost.total_bytes),
    )


def eager_note(r: AnalysisResult) -> str:
    """One sentence labelling per-module / per-category times as the eager op-by-op breakdown ('' when that tree
    made the headline)."""
    if not runtime_timed(r):
        return ""
    assert r.runtime_run is not None
    total = r.timed.nodes["root"].total_s
    return (
        f"**Eager op-by-op breakdown**, not the {r.runtime_run.runtime.runtime_id} runtime that made the headline: "
        f"every traced op launched on its own (hf-eager), end to end {fmt_ms(total)} on this model; times and "
        "shares here are of that total (the runtime's own split by module group is under Runtime)."
    )
