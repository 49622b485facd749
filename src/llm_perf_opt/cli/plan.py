"""``llm-perf-opt plan``: per device the highest-throughput concurrency meeting a p90 TTFT/TPOT SLA, the GPUs a daily
page volume needs, the cost per million pages, and which device wins and why.

Each device runs the closed-loop simulation over its concurrency grid (powers of two up to the runtime's
``max_num_seqs``; ``max(4 * C, 16)`` requests, or ``--requests`` if larger, per point); its latency percentiles
leave out the opening burst of the first ``C`` requests (all sent at once), so they describe the steady state
a planned service runs in. Prints a table and the
verdict (``--format json``: one object); ``--out DIR`` writes ``plan.json``, ``plan.md`` and ``plan.{png,svg}``.
An SLA no device meets prints one line naming the closest device and its p90s, and exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llm_perf_opt.cli.lists import comma_values
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.cli.simulate import (
    TIMER_FACTORY,
    dumps,
    options_from_flags,
    publish,
    resolve_config,
    workload_options,
)
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.core import check_output_folder
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf.iteration import BatchComposition
from llm_perf_opt.report.serving import plan_markdown, plan_text
from llm_perf_opt.serving.bounds import classify_step, decode_floors
from llm_perf_opt.serving.plan import PlanPoint, concurrency_grid, make_plan, parse_prices
from llm_perf_opt.serving.session import Prepared, prepare, with_device
from llm_perf_opt.serving.simulate import SimulationResult
from llm_perf_opt.serving.trust import trust_lines
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["PLAN_FILES", "plan"]

PLAN_FILES = ("plan.json", "plan.md")
"""Files that mark a folder as an earlier plan: ``--out`` may replace it whole."""


def _devices(text: str) -> list[str]:
    devices = comma_values(text, "--devices")
    for d in devices:
        get_device(d)  # unknown ids fail here, listing the known ones
    return devices


def _probe(p: Prepared) -> Workload | Ocr2Workload:
    """A page of the model for text-only mixes (only its decoder counts are read)."""
    if isinstance(p.config, DeepseekOCR2Config):
        return Ocr2Workload.create(mode="single", page=(1024, 1024))
    return Workload.create(mode="gundam", page=(1024, 1024), config=p.config)


class _Classifier:
    """The bound of a device's chosen point: its mean decode batch against the floors of :mod:`serving.bounds`."""

    def __init__(self, prepared: dict[str, Prepared], results: dict[tuple[str, int], SimulationResult]) -> None:
        self.prepared, self.results = prepared, results

    def __call__(self, device: str, point: PlanPoint) -> tuple[str, str]:
        p = self.prepared[device]
        m = self.results[(device, point.concurrency)].metrics
        n = max(1, round(m["engine"]["mean_running"]))
        records = self.results[(device, point.concurrency)].run.records
        context = round(sum(r.prompt_tokens + r.output_tokens / 2 for r in records) / len(records))
        step_s = p.timer.iteration_s(BatchComposition(decode_context=(context,) * n))
        workload = p.mix.workload or _probe(p)
        floors = decode_floors(p.config, workload, dtype=p.dtype)
        return classify_step(floors, p.device, dtype=p.dtype, n=n, keys=n * context, step_s=step_s)


@click.command(name="plan")
@click.option("--pages-per-day", type=float, required=True, help="Daily page volume to serve.")
@click.option("--slo-ttft-p90-ms", type=float, required=True, help="p90 time to first token target (ms).")
@click.option("--slo-tpot-p90-ms", type=float, required=True, help="p90 time per output token target (ms).")
@click.option("--devices", required=True, help="Catalog ids, comma-separated.")
@click.option("--price", default=None, help="USD per GPU-hour: DEVICE=PRICE pairs, comma-separated.")
@workload_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Write JSON, Markdown, plot.")
def plan(
    pages_per_day: float,
    slo_ttft_p90_ms: float,
    slo_tpot_p90_ms: float,
    devices: str,
    price: str | None,
    fmt: str,
    out_dir: str | None,
    quiet: bool,
    **flags: Any,
) -> None:
    """Cheapest device for a daily page volume under a p90 TTFT/TPOT SLA (closed-loop simulation per device)."""
    ids = _devices(devices)
    prices = parse_prices(price, ids)
    if flags["requests"] is not None and flags["requests"] < 1:
        raise UserError(f"--requests must be >= 1, got {flags['requests']}")
    base = options_from_flags(flags | {"concurrency": 1}, device=ids[0])
    if out_dir is not None:
        check_output_folder(Path(out_dir), recognise=PLAN_FILES)  # before any simulating
    factory = TIMER_FACTORY["default"]
    with StepProgress(quiet=quiet) as progress:
        progress(f"plan: preparing {base.model} on {len(ids)} device(s) ({base.runtime})")
        prepared = {
            d: prepare(with_device(base, d), timer_factory=factory, config_resolver=resolve_config) for d in ids
        }
        grids = {d: concurrency_grid(p.settings.max_num_seqs) for d, p in prepared.items()}
        results: dict[tuple[str, int], SimulationResult] = {}

        def point(device: str, concurrency: int) -> SimulationResult:
            progress(f"simulating {device} at concurrency {concurrency}")
            p = prepared[device]
            requests = max(4 * concurrency, 16, flags["requests"] or 0)
            load = p.load(concurrency=concurrency, requests=requests)
            results[(device, concurrency)] = p.run(load)
            return results[(device, concurrency)]

        result = make_plan(
            devices=ids,
            grids=grids,
            simulate_point=point,
            pages_per_day=pages_per_day,
            slo_ttft_p90_ms=slo_ttft_p90_ms,
            slo_tpot_p90_ms=slo_tpot_p90_ms,
            prices=prices,
            classify=_Classifier(prepared, results),
        )
    first = prepared[ids[0]]
    header = (
        f"{base.model}, runtime {base.runtime} ({first.timer_source}), {first.dtype}; {first.mix.summary()}; "
        f"closed loop per concurrency, seed {base.seed}. {trust_lines(base.runtime, device_ids=ids, model=base.model)}."
    )
    if out_dir is not None:
        # lazy: matplotlib, only when files are written
        from llm_perf_opt.report.serving_plots import render_plan_plot

        files = {
            "plan.json": dumps(result.as_dict() | {"header": header}).encode("utf-8"),
            "plan.md": plan_markdown(result, header).encode("utf-8"),
        } | render_plan_plot(result)
        publish(Path(out_dir), files, "plan", PLAN_FILES)
        click.echo(f"wrote {len(files)} files to {out_dir}", err=True)
    if result.winner is None:
        raise UserError(result.verdict)
    if fmt == "json":
        click.echo(dumps(result.as_dict() | {"header": header}), nl=False)
        return
    click.echo(f"plan: {header}\n" + plan_text(result) + result.verdict)
