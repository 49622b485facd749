"""Serving pages: the text summary of ``simulate``, and the Markdown of ``simulate --out`` and ``plan --out``.

Render only, no matplotlib (the plots are in :mod:`llm_perf_opt.report.serving_plots`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from llm_perf_opt.serving.plan import PlanResult

__all__ = ["plan_markdown", "plan_text", "simulation_markdown", "simulation_text"]


def _stats_row(name: str, stats: Mapping[str, float]) -> str:
    return f"| {name} | {stats['mean']:,.2f} | {stats['p50']:,.2f} | {stats['p90']:,.2f} | {stats['p99']:,.2f} |"


def _load(load: Mapping[str, Any]) -> str:
    loop = (
        f"closed loop, {load['concurrency']} clients" if load["concurrency"] else f"open loop, {load['rate']:g} req/s"
    )
    skipped = load.get("latency_skips_first", 0)
    warmup = f" (latencies leave out the first {skipped}, the opening burst)" if skipped else ""
    if load.get("all_in_opening_burst"):
        warmup = (
            " (every request is in the opening burst, all sent at once: its latencies are a cold start, not a steady "
            "state: raise --requests above --concurrency for those)"
        )
    return f"{loop}, {load['requests']} requests{warmup}, seed {load['seed']}"


def _requests(req: Mapping[str, Any]) -> str:
    page = "text-only" if req["page"] is None else f"{req['mode']} {req['page'][0]}x{req['page'][1]} pages"
    return (
        f"{page} ({req['image_tokens']} image tokens), prompt {req['prompt_tokens']} + output {req['output_tokens']} "
        f"tokens, repetition share {req['repetition_share']:g} (to {req['max_model_len']} tokens)"
    )


def simulation_text(m: Mapping[str, Any]) -> str:
    """The plain-text summary ``simulate`` prints."""
    thr, mem, sch = m["throughput"], m["memory"], m["scheduler"]
    lines = [
        f"simulate: {m['model']} on {m['device']} ({m['dtype']}), runtime {m['runtime']} - timer: {m['timer']}",
        f"load: {_load(m['load'])}; {_requests(m['requests'])}",
        f"throughput: {thr['requests_per_s']:,.3f} requests/s, {thr['pages_per_day']:,.0f} pages/day, "
        f"{thr['output_tokens_per_s']:,.1f} output tokens/s, {thr['input_tokens_per_s']:,.1f} input tokens/s",
    ]
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "e2e ")):
        s = m[key]
        lines.append(
            f"{label} ms: mean {s['mean']:,.2f}  p50 {s['p50']:,.2f}  p90 {s['p90']:,.2f}  p99 {s['p99']:,.2f}"
        )
    lines += [
        f"memory: weights {mem['weights_gb']:.2f} GB, KV cache {mem['kv_cache_gb']:.2f} GB "
        f"({mem['kv_capacity_tokens']:,} tokens, peak {mem['kv_peak_usage']:.0%} used); preemptions {m['preemptions']}",
        f"scheduler: max_num_seqs {sch['max_num_seqs']}, max_num_batched_tokens {sch['max_num_batched_tokens']}, "
        f"block size {sch['block_size']}, memory fraction {sch['memory_fraction']:g} ({sch['source']})",
        m["expected_error"],
    ]
    return "\n".join(lines) + "\n"


def simulation_markdown(m: Mapping[str, Any], curve: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    """``simulate.md``: the run, its percentiles, memory, scheduler settings, the curve table and the plots."""
    thr, mem = m["throughput"], m["memory"]
    rows = "\n".join(
        f"| {c} | {cm['throughput']['pages_per_day']:,.0f} | {cm['throughput']['output_tokens_per_s']:,.1f} | "
        f"{cm['ttft_ms']['p90']:,.2f} | {cm['tpot_ms']['p90']:,.2f} | {cm['preemptions']} |"
        for c, cm in curve
    )
    settings = "\n".join(f"| {k} | {v} |" for k, v in m["scheduler"].items())
    return (
        f"# Serving simulation: {m['model']} on {m['device']} ({m['dtype']}), {m['runtime']}\n\n"
        f"Iteration times: {m['timer']}. Load: {_load(m['load'])}. Requests: {_requests(m['requests'])}.\n\n"
        f"{m['expected_error'][0].upper()}{m['expected_error'][1:]}.\n\n"
        f"**Throughput** {thr['requests_per_s']:,.3f} requests/s, {thr['pages_per_day']:,.0f} pages/day, "
        f"{thr['output_tokens_per_s']:,.1f} output tokens/s, {thr['input_tokens_per_s']:,.1f} input tokens/s.\n\n"
        "| latency (ms) | mean | p50 | p90 | p99 |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(_stats_row(n, m[k]) for n, k in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("e2e", "e2e_ms")))
        + f"\n\n**Memory** weights {mem['weights_gb']:.2f} GB, workspace {mem['workspace_gb']:.2f} GB, KV cache "
        f"{mem['kv_cache_gb']:.2f} GB = {mem['kv_capacity_tokens']:,} tokens ({mem['kv_blocks']:,} blocks of "
        f"{mem['block_size']}), peak {mem['kv_peak_usage']:.0%} used; {m['preemptions']} preemptions.\n\n"
        "## Scheduler and cache settings\n\n| setting | value |\n|---|---|\n"
        + settings
        + "\n\n## Throughput against latency over concurrency (closed loop, 4 requests per client, at least 16; "
        "latencies leave out each run's opening burst)\n\n"
        "| concurrency | pages/day | output tokens/s | p90 TTFT ms | p90 TPOT ms | preemptions |\n"
        "|---:|---:|---:|---:|---:|---:|\n" + rows + "\n\n![Throughput against p90 latency](curve.png) "
        "([SVG](curve.svg))\n\n![KV cache and batch size over time](timeline.png) ([SVG](timeline.svg))\n"
    )


@frozen(kw_only=True)
class _PlanRow:
    """One device of a plan as printed: its cost per million pages (None: no price) and, when some concurrency meets
    the SLA, the cells concurrency, pages/day per GPU, GPUs, p90 TTFT ms, p90 TPOT ms and bound."""

    device: str
    cost: str | None
    met: tuple[str, str, str, str, str, str] | None


def _plan_rows(plan: PlanResult) -> list[_PlanRow]:
    rows = []
    for d in plan.as_dict()["devices"]:
        cost = None if d["cost_per_million_pages"] is None else f"{d['cost_per_million_pages']:,.2f}"
        met = None
        if d["concurrency"] is not None:
            met = (
                str(d["concurrency"]),
                f"{d['pages_per_day_per_gpu']:,.0f}",
                f"{d['gpus']:,}",
                f"{d['ttft_p90_ms']:,.1f}",
                f"{d['tpot_p90_ms']:,.2f}",
                str(d["bound"]),
            )
        rows.append(_PlanRow(device=str(d["device"]), cost=cost, met=met))
    return rows


def plan_text(plan: PlanResult) -> str:
    """The plain-text table ``plan`` prints."""
    lines = [
        f"{'device':<14} {'conc.':>6} {'pages/day/GPU':>14} {'GPUs':>6} {'p90 TTFT ms':>12} {'p90 TPOT ms':>12} "
        f"{'$/M pages':>10}  bound"
    ]
    for row in _plan_rows(plan):
        if row.met is None:
            lines.append(f"{row.device:<14} {'-':>6} {'SLA not met':>14}")
            continue
        concurrency, pages, gpus, ttft, tpot, bound = row.met
        lines.append(
            f"{row.device:<14} {concurrency:>6} {pages:>14} {gpus:>6} {ttft:>12} {tpot:>12} {row.cost or '-':>10}  "
            f"{bound}"
        )
    return "\n".join(lines) + "\n"


def plan_markdown(plan: PlanResult, header: str) -> str:
    """``plan.md``: the table, the verdict and the plot."""
    rows = []
    for row in _plan_rows(plan):
        cost = "-" if row.cost is None else f"${row.cost}"
        cells = row.met or ("-", "-", "-", "-", "-", "SLA not met")
        rows.append(f"| {row.device} | {' | '.join(cells[:5])} | {cost} | {cells[5]} |")
    return (
        f"# Capacity plan\n\n{header}\n\nTarget {plan.pages_per_day:,.0f} pages/day at p90 TTFT <= "
        f"{plan.slo_ttft_p90_ms:g} ms and p90 TPOT <= {plan.slo_tpot_p90_ms:g} ms.\n\n"
        "| device | concurrency | pages/day per GPU | GPUs | p90 TTFT ms | p90 TPOT ms | $/M pages | bound |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + f"\n\n**{plan.verdict}**\n\n"
        "![Pages per day per GPU against p90 TTFT](plan.png) ([SVG](plan.svg))\n"
    )
