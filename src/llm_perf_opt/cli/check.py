"""``llm-perf-opt check --golden DIR``: the CI gate for "did an upstream or code change move the tree or the costs".

Reads the golden's options (``options.json`` beside its ``model.json``), regenerates the report with the same model
source, workload and options, and diffs the fresh ``model.json`` against the golden: exit 0 when equal within
``--tolerance``, 1 otherwise, with the differing nodes printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from llm_perf_opt.core import staged_directory
from llm_perf_opt.errors import UserError

__all__ = ["check"]


@click.command(name="check")
@click.option(
    "--golden",
    "golden",
    required=True,
    metavar="PATH",
    help="Golden report: a folder written by analyze, or its model.json (options.json must sit beside it).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0.0),
    default=1e-6,
    show_default=True,
    help="Relative tolerance for FLOPs, bytes, time and memory: |a-b| <= tol * max(|a|, |b|).",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Also write the fresh report.")
@click.option("--limit", type=click.IntRange(min=1), default=40, show_default=True, help="Lines per diff section.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def check(golden: str, tolerance: float, out_dir: str | None, limit: int, quiet: bool) -> None:
    """Regenerate the report a golden describes and compare it with the golden (exit 0 equal, 1 different)."""
    from llm_perf_opt.report.diff_render import render_diff_text
    from llm_perf_opt.report.golden import check_golden

    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    say(f"check: regenerating {golden}")
    result = check_golden(golden, tolerance=tolerance, progress=say)
    if out_dir is not None:
        _write(Path(out_dir), result.files)
        say(f"wrote {len(result.files)} files to {out_dir}")
    if result.golden.report_id and result.fresh_report_id and result.golden.report_id != result.fresh_report_id:
        click.echo(
            f"note: report id {result.fresh_report_id} differs from the golden's {result.golden.report_id} "
            "(another tool version or option spelling); the contents are compared below"
        )
    click.echo(render_diff_text(result.diff, limit=limit), nl=False)
    click.get_current_context().exit(0 if result.diff.equal else 1)


def _write(out_dir: Path, files: Mapping[str, bytes]) -> None:
    try:
        with staged_directory(out_dir) as stage:
            for rel, data in files.items():
                target = stage / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write to {out_dir}: {exc.strerror or exc}; choose another --out") from None
