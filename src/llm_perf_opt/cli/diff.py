"""``llm-perf-opt diff A B``: what changed between two reports (or two trees); exit 0 when equal, 1 when different, 2
for usage errors or inputs that cannot be read (so a script tells drift from a broken input).

Torch-free: it reads ``model.json`` files (or report folders, or ``tree`` listings) and never runs a model.
"""

from __future__ import annotations

import json

import click

from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import diff_snapshots, load_snapshot
from llm_perf_opt.report.diff_render import diff_to_dict, render_diff_text

__all__ = ["diff"]


@click.command(name="diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0.0),
    default=1e-6,
    show_default=True,
    help="Relative tolerance for numeric metrics: |a-b| <= tol * max(|a|, |b|) counts as equal.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=40, show_default=True, help="Lines per text section.")
@click.option(
    "--counts-only",
    is_flag=True,
    default=False,
    help="Compare tree shape and counters only: class module prefixes, constructor extras, time and header ignored.",
)
def diff(a: str, b: str, tolerance: float, fmt: str, limit: int, counts_only: bool) -> None:
    """Compare report A with report B (folders, model.json files, or tree listings).

    Lists added, removed and changed nodes (class, repetition, constructor parameters) and per-node FLOP, byte,
    time and memory differences beyond the tolerance, after a header block (model, source revision, workload,
    device, dtype, attention, runtime, profile) and the headline deltas (TTFT, TPOT, end to end, pages/day, peak
    memory, max batch). Exit 0 when equal, 1 when different, 2 when an input cannot be read.
    """
    try:
        result = diff_snapshots(load_snapshot(a), load_snapshot(b), tolerance=tolerance, counts_only=counts_only)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        click.get_current_context().exit(2)
    if fmt == "json":
        click.echo(json.dumps(diff_to_dict(result), indent=2, sort_keys=False))
    else:
        click.echo(render_diff_text(result, limit=limit), nl=False)
    click.get_current_context().exit(0 if result.equal else 1)
