"""``llm-perf-opt diff A B``: what changed between two reports (or two trees); exit 0 when equal, 1 otherwise.

Torch-free: it reads ``model.json`` files (or report folders, or ``tree`` listings) and never runs a model.
"""

from __future__ import annotations

import json

import click

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
def diff(a: str, b: str, tolerance: float, fmt: str, limit: int) -> None:
    """Compare report A with report B (folders, model.json files, or tree listings).

    Lists added, removed and changed nodes (class, repetition, constructor parameters) and per-node FLOP, byte,
    time and memory differences beyond the tolerance. Exit 0 when equal, 1 when different.
    """
    result = diff_snapshots(load_snapshot(a), load_snapshot(b), tolerance=tolerance)
    if fmt == "json":
        click.echo(json.dumps(diff_to_dict(result), indent=2, sort_keys=False))
    else:
        click.echo(render_diff_text(result, limit=limit), nl=False)
    click.get_current_context().exit(0 if result.equal else 1)
