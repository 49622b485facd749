"""``llm-perf-opt check --golden DIR``: the CI gate for "did an upstream or code change move the tree or the costs".

A report golden (a folder written by ``analyze``): its options (``options.json`` beside ``model.json``) are run again
- with ``--model`` another model source, e.g. a new Hub revision - and the fresh ``model.json`` is diffed against the
golden: exit 0 when equal within ``--tolerance``, 1 otherwise, with the differing nodes printed.

A pinned golden (``third_party/<repo>/<revision>/``, or one of its ``golden/*.json``): every golden workload is
traced again on ``--model`` (default: the source the goldens were traced from) and compared node by node exactly;
exit 1 names every node that moved, and remote-code files whose sha256 changed are listed either way.
``llm-perf-opt check --model hf:deepseek-ai/DeepSeek-OCR@main --trust-remote-code --golden
third_party/deepseek-ai--DeepSeek-OCR/<commit>`` is the gate for a new upstream revision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from llm_perf_opt.admission import check_model_source_flag
from llm_perf_opt.core import check_output_folder
from llm_perf_opt.report.diff_render import render_diff_text
from llm_perf_opt.tracer.golden import write_golden

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
@click.option(
    "--model",
    default=None,
    help="Model source to check instead of the golden's (e.g. hf:deepseek-ai/DeepSeek-OCR@REV, hf-snapshot:PATH).",
)
@click.option("--trust-remote-code", is_flag=True, default=False, help="Allow running a model source's remote code.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write the fresh report (report golden) or the fresh goldens (pinned golden).",
)
@click.option("--limit", type=click.IntRange(min=1), default=40, show_default=True, help="Lines per diff section.")
@click.option(
    "--no-cache", is_flag=True, help="Trace a report golden afresh instead of reading the trace cache (stores nothing)."
)
@click.option(
    "--counts-only",
    is_flag=True,
    default=False,
    help="Compare tree shape and counters only (class module prefixes and constructor extras ignored).",
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def check(
    golden: str,
    tolerance: float,
    model: str | None,
    trust_remote_code: bool,
    out_dir: str | None,
    limit: int,
    no_cache: bool,
    counts_only: bool,
    quiet: bool,
) -> None:
    """Regenerate what a golden describes and compare it with the golden (exit 0 equal, 1 different)."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.pinned import is_pinned_golden
    from llm_perf_opt.report.golden import check_golden

    check_model_source_flag(model)

    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    if out_dir is not None and not is_pinned_golden(golden):
        # lazy: report.files pulls in the pipeline (torch); only needed when --out is given
        from llm_perf_opt.report.files import REPORT_FILES

        check_output_folder(Path(out_dir), recognise=REPORT_FILES)
    if is_pinned_golden(golden):
        _check_pinned(golden, model, trust_remote_code, out_dir, limit, say, counts_only=counts_only)
        return
    say(f"check: regenerating {golden}" + (f" with model source {model}" if model else ""))
    result = check_golden(
        golden,
        tolerance=tolerance,
        progress=say,
        model=model,
        trust_remote_code=trust_remote_code,
        use_cache=not no_cache,
        counts_only=counts_only,
    )
    if out_dir is not None:
        # lazy: torch loads only when the command runs (--help imports every command module)
        from llm_perf_opt.report.files import publish_files

        publish_files(result.files, Path(out_dir))
        say(f"wrote {len(result.files)} files to {out_dir}")
    if result.golden.report_id and result.fresh_report_id and result.golden.report_id != result.fresh_report_id:
        click.echo(
            f"note: report id {result.fresh_report_id} differs from the golden's {result.golden.report_id} "
            "(another tool version or option spelling); the contents are compared below"
        )
    click.echo(render_diff_text(result.diff, limit=limit), nl=False)
    click.get_current_context().exit(0 if result.diff.equal else 1)


def _check_pinned(
    golden: str,
    model: str | None,
    trust: bool,
    out_dir: str | None,
    limit: int,
    say: Callable[[str], None],
    *,
    counts_only: bool = False,
) -> None:
    """A pinned golden: re-trace every golden workload, compare exactly, list code changes (exit 0/1)."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.pinned import check_pinned

    say(f"check: tracing the workloads of the pinned golden {golden}")
    result = check_pinned(golden, model=model, trust_remote_code=trust, progress=say, counts_only=counts_only)
    if out_dir is not None:
        for name, fresh in result.fresh.items():
            write_golden(Path(out_dir) / "golden" / f"{name}.json", fresh)
        say(f"wrote {len(result.fresh)} fresh golden(s) to {Path(out_dir) / 'golden'}")
    code_changes = list(result.code_changes)
    if code_changes and all(line.endswith("-> missing") for line in code_changes):
        click.echo(f"code: not compared ({result.model} runs no remote code; the pinned hashes describe upstream's)")
        code_changes = []
    for line in code_changes:
        click.echo(f"code changed: {line}")
    for line in result.problems[:limit]:
        click.echo(line)
    if len(result.problems) > limit:
        click.echo(f"... {len(result.problems) - limit} more difference(s) (raise --limit to see them)")
    verdict = "equal" if not result.problems else f"{len(result.problems)} difference(s)"
    click.echo(
        f"{result.model} vs {golden}: {verdict} over {len(result.fresh)} workload(s) "
        f"({', '.join(result.fresh)}); {len(code_changes)} code file change(s)"
    )
    click.get_current_context().exit(0 if not result.problems else 1)
