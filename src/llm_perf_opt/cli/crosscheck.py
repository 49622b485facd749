"""``llm-perf-opt crosscheck [--with flopcounter,fvcore]``: our matmul FLOPs against FlopCounterMode and fvcore.

Per stage and per top-level module of one prefill pass and one decode step (tiny variant by default), with the
reason for every difference; exit 0 when every difference is explained, 1 otherwise.  fvcore is optional
(``pip install 'llm-perf-opt[fvcore]'``); without it the default compares with FlopCounterMode alone and says so.
"""

from __future__ import annotations

import importlib.util
import json

import click
from attrs import asdict

from llm_perf_opt.errors import UserError
from llm_perf_opt.report.humanize import fmt_int, md_table

__all__ = ["crosscheck"]


@click.command(name="crosscheck")
@click.option(
    "--with", "counters", default=None, help="Counters, comma-separated: flopcounter, fvcore (default: both)."
)
@click.option(
    "--model", default="deepseek-ocr-v1-tiny", show_default=True, help="Model source (fvcore runs it on CPU)."
)
@click.option("--workload", "workload_id", default="dsocr-tiny-v1", show_default=True, help="Workload preset id.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
def crosscheck(counters: str | None, model: str, workload_id: str, fmt: str) -> None:
    """Compare our matmul FLOPs with torch's FlopCounterMode and fvcore, row by row, with the reason for each
    difference (exit 0 when all are explained)."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.crosscheck import COUNTERS
    from llm_perf_opt.analysis.crosscheck import crosscheck as run_crosscheck

    if counters is None:
        chosen = [c for c in COUNTERS if c != "fvcore" or importlib.util.find_spec("fvcore") is not None]
        if "fvcore" not in chosen:
            click.echo(
                "note: fvcore is not installed (pip install 'llm-perf-opt[fvcore]'); FlopCounterMode only", err=True
            )
    else:
        chosen = [c.strip() for c in counters.split(",") if c.strip()]
        if not chosen:
            raise UserError("--with lists no counter; expected some of: flopcounter, fvcore")
    rows = run_crosscheck(model=model, workload_id=workload_id, counters=chosen)
    if fmt == "json":
        click.echo(json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2))
    else:
        table = [
            (
                r.counter,
                f"`{r.name}`",
                fmt_int(r.ours),
                "-" if r.theirs is None else fmt_int(r.theirs),
                "-" if r.ratio is None else f"{r.ratio:.4f}",
                ("" if r.explained else "**NOT EXPLAINED** ") + r.reason,
            )
            for r in rows
        ]
        click.echo(
            f"# Cross-check: {model}, {workload_id} (prefill + one decode step)\n\n"
            "Ours: the tracer's dense matmul FLOPs (2 per multiply-accumulate). A stage row sums its modules.\n\n"
            + md_table(("counter", "node", "ours", "theirs", "theirs / ours", "why"), table, align="llrrrl"),
            nl=False,
        )
    unexplained = [r for r in rows if not r.explained]
    click.get_current_context().exit(1 if unexplained else 0)
