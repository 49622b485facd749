"""report.md's Runtime section: "Why is decode this slow" shares are of the step (they sum to 100%), and the step it
explains is the one the headline's TPOT is made of, under the request's routing (issue 14 follow-up, F1 and F4)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_ms, fmt_share
from llm_perf_opt.report.markdown import render_report_md
from llm_perf_opt.report.md_analysis import plots_section
from llm_perf_opt.report.md_runtime import runtime_section, top_group_fact


def _tiny(**options: Any) -> AnalysisResult:
    return run_analysis(
        AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, **options)
    )


def _why_rows(section: str) -> list[list[str]]:
    table = section.split("### Why is decode this slow", 1)[1].split("\n\nTrust:", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| module group |") and lines[0].endswith("| share of the step |")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.parametrize("runtime", ["hf-eager", "vllm"])
def test_shares_are_of_the_step_and_sum_to_100_percent(runtime: str) -> None:
    result = _tiny(runtime=runtime)
    run = result.runtime_run
    assert run is not None
    rows = _why_rows(runtime_section(result))
    assert len(rows) == len(run.breakdown) >= 3
    step = run.decode_device_s
    # the groups' device times are the step's device time (hf-eager: roofline + host launches, added op by op)
    assert math.isclose(sum(m.seconds for m in run.breakdown), step, rel_tol=1e-9)
    for row, group in zip(rows, run.breakdown, strict=True):
        assert row[0] == group.module and row[4] == fmt_share(group.seconds / step)
    shares = [float(row[4].rstrip("%")) for row in rows if row[4] != "<0.1%"]
    assert abs(sum(shares) - 100.0) <= 0.05 * len(rows) + 0.1  # one-decimal rounding per row
    assert fmt_share(run.breakdown[0].seconds / step) in top_group_fact(result)  # the headline bullet agrees


@pytest.mark.parametrize(("runtime", "tolerance"), [("vllm", 1e-3), ("hf-eager", 0.02)])
def test_the_runtime_sections_step_is_the_headlines_under_skewed_routing(runtime: str, tolerance: float) -> None:
    """Batch 64, skewed:8: the step the section explains is the headline's TPOT (vllm: the same timer, the middle
    context against the mean; hf-eager: the traced tree's deterministic expert counts against the timer's expected
    coverage).  Before the fix the hf-eager section showed the balanced step, 22% above the headline here."""
    skewed = _tiny(runtime=runtime, batch_size=64, routing="skewed:8")
    balanced = _tiny(runtime=runtime, batch_size=64)
    run, base = skewed.runtime_run, balanced.runtime_run
    assert run is not None and base is not None
    step = run.decode.seconds(overlap=run.runtime.overlap)
    assert step == pytest.approx(skewed.stages.tpot_s, rel=tolerance)
    assert run.decode.bytes < base.decode.bytes  # fewer distinct experts' weights read per step
    assert f"roofline {fmt_ms(run.decode.roofline_s)}" in runtime_section(skewed)
    if runtime == "hf-eager":
        assert skewed.stages.tpot_s < 0.9 * balanced.stages.tpot_s and run.decode.kernels < base.decode.kernels


@pytest.mark.parametrize("runtime", ["hf-eager", "vllm", "sglang"])
def test_memory_says_when_it_is_not_the_runtimes_own(runtime: str) -> None:
    # analyze sizes the HF footprint (whole batch prefilled at once); a serving runtime's memory is simulate's model
    memory = render_report_md(_tiny(runtime=runtime)).split("## Memory", 1)[1]
    noted = f"not {runtime}'s" in memory and f"simulate --runtime {runtime}" in memory
    assert noted == (runtime != "hf-eager")


def test_hf_cuda_graph_launches_its_eager_expert_loop_per_expert_hit() -> None:
    # hf-cuda-graph's routed experts run as traced (the expert loop breaks the graph): its MoE kernels per decode step
    # grow with the experts hit exactly as hf-eager's do, not frozen at the batch-1 count (which kept TPOT equal at
    # batch 1 and 64); only the fused shared-expert MLP (silu*mul in one kernel) differs, by the same at every batch
    def moe_kernels(runtime: str, batch: int) -> float:
        run = _tiny(runtime=runtime, batch_size=batch).runtime_run
        assert run is not None
        return next(g.kernels for g in run.breakdown if g.module.startswith("MoE block"))

    fused_away = [moe_kernels("hf-eager", batch) - moe_kernels("hf-cuda-graph", batch) for batch in (1, 8)]
    assert fused_away[0] == pytest.approx(fused_away[1], abs=1e-6) and fused_away[0] >= 0
    assert moe_kernels("hf-cuda-graph", 8) > 1.5 * moe_kernels("hf-cuda-graph", 1)


def test_a_graphed_decode_says_what_still_launches_eagerly() -> None:
    # hf-cuda-graph's expert loop breaks the graph: its launches are named; vLLM's decode is one graph
    graph = _tiny(runtime="hf-cuda-graph").runtime_run
    assert graph is not None and graph.decode.launch_s > 0
    row = f"| decode step runs in | a CUDA graph, with {fmt_ms(graph.decode.launch_s)} of eager launches between"
    assert row in runtime_section(_tiny(runtime="hf-cuda-graph"))
    assert "| decode step runs in | a CUDA graph |" in runtime_section(_tiny(runtime="vllm"))


def test_figure_captions_say_when_they_show_the_eager_breakdown() -> None:
    # a serving runtime times stages; the category and roofline figures still show the traced ops' eager times
    served = plots_section(_tiny(runtime="vllm"))
    assert "![Roofline of the heaviest modules on this device (the eager op-by-op breakdown)]" in served
    assert "(time: the eager op-by-op breakdown)](plots/category_shares.svg)" in served
    assert "eager op-by-op" not in plots_section(_tiny())
