"""report.md's "Runtime" section: how the chosen runtime runs the request and why decode is as slow as it is.

Renders :class:`~llm_perf_opt.runtimes.request.RuntimeRun` (computed by the analysis; nothing is recomputed here):
kernels per decode step, bytes per generated token, the bound of each stage (compute / memory / launch / host), a
decode step split by module group, and how far the time can be trusted.
"""

from __future__ import annotations

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_bytes, fmt_count, fmt_ms, fmt_share, md_table
from llm_perf_opt.report.stage_view import runtime_timed
from llm_perf_opt.runtimes.bands import trust_line
from llm_perf_opt.runtimes.timer import ForwardTerms

__all__ = ["kernel_note", "overhead_label", "runtime_section", "time_note", "top_group_fact", "trust_fact"]

_EAGER_TIME_NOTE = (
    "The last column splits each stage's predicted time by what bounds its kernel groups: compute (FLOPs at "
    "the category efficiency), memory (bytes at the memory efficiency) and per-kernel launch overhead. "
    "Bytes are eager op-level traffic, an upper bound for fused kernels."
)


def overhead_label(r: AnalysisResult) -> str:
    """What the third share of the headline's bound line counts."""
    return "launch and host overhead" if runtime_timed(r) else "launch overhead"


def kernel_note(r: AnalysisResult) -> str:
    """After the kernel count in the headline's bound line: what each kernel costs in the model that timed it."""
    run = r.runtime_run
    if run is None or not runtime_timed(r):
        note = r.profile.overhead_note()
        return f"; {note}" if note else f" at {fmt_ms(r.profile.kernel_overhead_s)} each"
    rt = run.runtime
    if not rt.overlap:
        return f", {run.runtime.runtime_id}: {fmt_ms(r.profile.kernel_overhead_s)} each, op by op"
    where = {"full": "in a CUDA graph", "piecewise": "in piecewise graphs", "none": "launched eagerly"}[
        run.decode.graphs
    ]
    return (
        f", {rt.runtime_id}: decode steps {where}, host {fmt_ms(rt.step_host_s)} per step"
        + (f", {fmt_ms(rt.prefill_host_s)} per prefill iteration" if rt.prefill_host_s else "")
        + f" and {fmt_ms(rt.request_overhead_s)} per request outside the model"
    )


def top_group_fact(r: AnalysisResult) -> str:
    """The headline bullet naming the module group a decode step spends most of its device time in."""
    run = r.runtime_run
    assert run is not None
    step = run.decode_device_s
    if not run.breakdown or step <= 0:
        return "- Largest module group of a decode step: - (no decode step)."
    top = run.breakdown[0]
    return (
        f"- Largest module group of a decode step ({run.runtime.runtime_id}): {top.module}, "
        f"{fmt_ms(top.seconds)} ({fmt_share(top.seconds / step)} of the step's device time)."
    )


def time_note(r: AnalysisResult) -> str:
    """The paragraph under the Time table: which model made its numbers and what its columns count."""
    run = r.runtime_run
    if run is None or not runtime_timed(r):
        return _EAGER_TIME_NOTE
    return (
        f"Every time, kernel count, byte count and split in this table is the {run.runtime.runtime_id} runtime's "
        "(FLOPs are the traced ones: fusing changes no FLOP). The last column splits each stage by what bounds it: "
        "compute and memory (the roofline of the kernel groups where each wins) and overhead (device gaps or host "
        "launches beyond the roofline, host time per step and per prefill iteration, and the per-request time outside "
        "the model in prefill). "
        "Bytes are those of the runtime's fused kernels; decode sums every step at its own context."
    )


def trust_fact(r: AnalysisResult) -> str:
    """The headline bullet that says which runtime and profile made the times and how far they can be trusted."""
    runtime_id = r.runtime_run.runtime.runtime_id if r.runtime_run is not None else "hf-eager"
    trust = trust_line(runtime_id, calibrated=r.calibrated, device_id=r.device.device_id, model=r.options.model)
    if not r.reads_profile:
        return (
            f"- Times from runtime {runtime_id}'s kernel model (its own constants; the device profile "
            f"{r.profile.source} times only the eager per-module breakdown); {trust}."
        )
    where = "calibrated on this device" if r.calibrated else "not calibrated on this device"
    return f"- Times from runtime {runtime_id} with profile {r.profile.source} ({where}); {trust}."


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
            ("decode step runs in", _graphs_text(d)),
            ("decode bound", d.bound),
            ("prefill bound", p.bound),
            ("vision bound", "-" if run.text_only else "eager launches: " + run.vision_bound),
            ("host time per step", fmt_ms(d.step_host_s)),
            ("per-request time outside the model", fmt_ms(rt.request_overhead_s)),
            *(
                [("host time per prefill iteration (stalls decode)", fmt_ms(rt.prefill_host_s))]
                if rt.prefill_host_s
                else []
            ),
        ],
        align="ll",
    )
    step = run.decode_device_s  # the groups' device times sum to it: shares of the step, summing to 100%
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
    why = md_table(("module group", "kernels", "bytes", "device time", "share of the step"), rows)
    terms = (
        f"One decode step at the middle context: roofline {fmt_ms(d.roofline_s)} (compute-bound part "
        f"{fmt_ms(d.compute_bound_s)}), device gaps {fmt_ms(d.gap_s)} ({fmt_count(d.kernels)} kernels), host launches "
        f"{fmt_ms(d.launch_s)}, host per step {fmt_ms(d.step_host_s)}; the step takes the larger of device and host "
        "time plus the host time per step"
        if rt.overlap
        else f"One decode step at the middle context: roofline {fmt_ms(d.roofline_s)}, plus {fmt_ms(d.launch_s)} of "
        f"per-kernel overhead for {fmt_count(d.kernels)} kernels (added, op by op)"
    )
    trust = trust_line(rt.runtime_id, calibrated=r.calibrated, device_id=r.device.device_id, model=r.options.model)
    scope = (
        f"Text-only request: no image, S = {run.seq_len} (1 BOS + prompt tokens); it was traced as such, so every "
        "count, time and table in this report is of that request (no vision or projector stage)."
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
            f"Trust: {trust}. Runtime kernel maps, sources and published comparisons: docs/validation-runtimes.md.",
        ]
    )


def _graphs_text(d: ForwardTerms) -> str:
    """Where a decode step's kernels run: in graphs, and what still launches eagerly between them (an expert loop
    that breaks the graph, as in hf-cuda-graph)."""
    text = {"full": "a CUDA graph", "piecewise": "piecewise graphs", "none": "eager launches"}[d.graphs]
    if d.graphs != "none" and d.launch_s > 0:
        text += f", with {fmt_ms(d.launch_s)} of eager launches between its segments"
    return text
