"""Serving plots (PNG and SVG, deterministic like the report plots): the throughput-latency curve over concurrency,
KV cache usage and batch size over time, and the plan's pages/day per GPU over each device's grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from llm_perf_opt.report.plots import figure_bytes, plain_ticks, si_ticks
from llm_perf_opt.serving.plan import PlanResult
from llm_perf_opt.serving.simulate import SimulationResult

__all__ = ["render_plan_plot", "render_simulation_plots"]

_MAX_POINTS = 2000


def render_simulation_plots(
    result: SimulationResult, curve: Sequence[tuple[int, Mapping[str, Any]]]
) -> dict[str, bytes]:
    """``curve.{png,svg}`` and ``timeline.{png,svg}``."""

    def draw_curve(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        xs = [cm["throughput"]["pages_per_day"] for _, cm in curve]
        ax.plot(xs, [cm["ttft_ms"]["p90"] for _, cm in curve], marker="o", label="p90 TTFT")
        ax.plot(xs, [cm["tpot_ms"]["p90"] for _, cm in curve], marker="s", label="p90 TPOT")
        for (c, cm), x in zip(curve, xs, strict=True):
            ax.annotate(f"C={c}", (x, cm["ttft_ms"]["p90"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_yscale("log")
        si_ticks(ax.xaxis)
        plain_ticks(ax.yaxis)
        ax.set_xlabel("pages per day (one GPU)")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title("Throughput against latency over concurrency")
        ax.legend(frameon=False)

    timeline = result.run.timeline
    stride = max(1, len(timeline) // _MAX_POINTS)
    pts = timeline[::stride]
    total = max(result.run.kv_blocks_total, 1)

    def draw_timeline(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        t = [p.time_s for p in pts]
        ax.plot(t, [100.0 * p.kv_blocks_used / total for p in pts], color="#DD8452", label="KV cache used (%)")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("KV cache used (%)")
        ax.set_ylim(0, 105)
        ax2 = ax.twinx()
        ax2.spines["right"].set_visible(True)
        ax2.plot(t, [p.running for p in pts], color="#4C72B0", label="running requests")
        ax2.set_ylabel("running requests (batch)")
        ax2.set_ylim(0, max((p.running for p in pts), default=1) * 1.05)
        fig.subplots_adjust(right=0.88)
        ax.set_title("KV cache usage and batch size over time")
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(
            lines,
            [str(line.get_label()) for line in lines],
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=2,
        )

    return figure_bytes(draw_curve, "curve") | figure_bytes(draw_timeline, "timeline")


def render_plan_plot(plan: PlanResult) -> dict[str, bytes]:
    """``plan.{png,svg}``: pages/day per GPU against p90 TTFT over each device's grid, SLA-meeting points filled."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for p in plan.plans:
            xs = [q.ttft_p90_ms for q in p.points]
            ys = [q.pages_per_s * 86_400 for q in p.points]
            (line,) = ax.plot(xs, ys, marker="o", fillstyle="none", label=p.device)
            ok = [(x, y) for x, y, q in zip(xs, ys, p.points, strict=True) if q.meets_sla]
            if ok:
                ax.plot([o[0] for o in ok], [o[1] for o in ok], "o", color=line.get_color())
        ax.axvline(plan.slo_ttft_p90_ms, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        plain_ticks(ax.xaxis)
        si_ticks(ax.yaxis)
        ax.set_xlabel("p90 TTFT, ms (log; dashed: the SLA)")
        ax.set_ylabel("pages per day per GPU")
        ax.set_title("Concurrency grid per device (filled: meets the SLA)")
        ax.legend(frameon=False, fontsize=8)

    return figure_bytes(draw, "plan")
