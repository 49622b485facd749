"""report.md's "Runtime" section: how the chosen runtime runs the request and why decode is as slow as it is.

Renders :class:`~llm_perf_opt.runtimes.request.RuntimeRun` (computed by the analysis; nothing is recomputed here):
kernels per decode step, bytes per generated token, the bound of each stage (compute / memory / launch / host), a
decode step split by module group, and how far the time can be trusted.
"""

from __future__ import annotations

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_bytes, fmt_count, fmt_ms, fmt_share, md_table
from llm_perf_opt.runtimes.bands import trust_line

__all__ = ["runtime_section"]


def runtime_section(r: AnalysisResult) -> str:
    """The section text ('' when the analysis has no runtime run)."""
    run = r.runtime_run
    if run is None:
        return ""
    rt = run.runtime
    d, p = run.decode, run.prefill
    facts = md_table(
        ("", ""),
        [
            ("runtime", f"{rt.runtime_id}: {rt.description}"),
            ("request", "text only (no page)" if run.text_only else "page + prompt"),
            ("kernels per decode step", fmt_count(d.kernels)),
            ("bytes per generated token", fmt_bytes(run.bytes_per_token)),
            (
                "decode step runs in",
                {"full": "a CUDA graph", "piecewise": "piecewise graphs", "none": "eager launches"}[d.graphs],
            ),
            ("decode bound", d.bound),
            ("prefill bound", p.bound),
            ("vision bound", "-" if run.text_only else "eager launches: " + run.vision_bound),
            ("host time per step", fmt_ms(d.step_host_s)),
            ("per-request time outside the model", fmt_ms(rt.request_overhead_s)),
        ],
        align="ll",
    )
    step = d.roofline_s + d.gap_s
    rows = [
        (
            m.module,
            fmt_count(m.kernels),
            fmt_bytes(m.bytes),
            fmt_ms(m.seconds),
            fmt_share(m.seconds / step) if step else "-",
        )
        for m in run.breakdown
    ]
    why = md_table(("module group", "kernels", "bytes", "device time", "share"), rows)
    terms = (
        f"One decode step at the middle context: roofline {fmt_ms(d.roofline_s)} (compute-bound part "
        f"{fmt_ms(d.compute_bound_s)}), device gaps {fmt_ms(d.gap_s)} ({fmt_count(d.kernels)} kernels), host launches "
        f"{fmt_ms(d.launch_s)}, host per step {fmt_ms(d.step_host_s)}; the step takes the larger of device and host "
        "time plus the host time per step"
        if rt.overlap
        else f"One decode step at the middle context: roofline {fmt_ms(d.roofline_s)}, plus {fmt_ms(d.launch_s)} of "
        f"per-kernel overhead for {fmt_count(d.kernels)} kernels (added, op by op)"
    )
    calibrated = r.profile.device_id == r.device.device_id
    scope = (
        f"Text-only request: the time is for the prompt alone (S = {run.seq_len}); the counts and module tables "
        "elsewhere in this report are of the page workload that was traced."
        if run.text_only
        else ""
    )
    return "\n".join(
        [
            "## Runtime\n",
            scope,
            "",
            facts,
            "",
            "### Why is decode this slow\n",
            terms + ".",
            "",
            why,
            "",
            f"Trust: {trust_line(rt.runtime_id, calibrated=calibrated)}. Runtime kernel maps, sources and published "
            "comparisons: docs/validation-runtimes.md.",
        ]
    )
