"""``llm-perf-opt compare --device a,b,c``: one workload on several devices, side by side.

The model is traced once; each device times the same counts on its own peaks and bandwidth and checks the same
memory footprint against its capacity; ``--runtime R`` times every device with that runtime's kernel model, as
``analyze --runtime R`` does for one.  The Markdown table goes to stdout (``--format json`` for scripts); ``--out
DIR`` also writes ``compare.md`` and ``compare.json`` (the folder is replaced whole).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from llm_perf_opt.admission import check_analysis_flags
from llm_perf_opt.analysis.options import AnalysisOptions, default_attention
from llm_perf_opt.cli.analyze import run_options, runtime_options, workload_flags, workload_options
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.core import check_output_folder, staged_directory
from llm_perf_opt.errors import UserError

__all__ = ["COMPARE_FILES", "compare"]

COMPARE_FILES = ("compare.md", "compare.json")
"""Files that mark a folder as an earlier comparison: ``--out`` may replace it whole."""


@click.command(name="compare")
@click.option("--device", "devices", required=True, help="Catalog ids to compare, comma-separated (2 or more).")
@workload_options
@run_options
@runtime_options
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Also write here."
)
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--quiet", is_flag=True, default=False, help="No progress on stderr.")
def compare(devices: str, out_dir: Path | None, fmt: str, quiet: bool, **params: Any) -> None:
    """Trace one workload once and compare its predicted times, throughput and memory fit on several devices (each
    timed by ``--runtime``'s kernel model)."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.compare import analysis_device, compare_devices
    from llm_perf_opt.analysis.pipeline import run_analysis
    from llm_perf_opt.report.compare_md import render_compare_json, render_compare_md

    ids = [d.strip() for d in devices.split(",") if d.strip()]
    if len(ids) < 2:
        raise UserError(f"--device lists {len(ids)} device(s); compare needs two or more, e.g. h100-sxm,a100-80gb")
    # unknown or repeated ids fail here, before the trace; devices without the dtype are skipped, whatever their place
    flags = workload_flags(params, device=analysis_device(ids, params["dtype"]))
    attention, runtime = params["attention"], params["runtime"]
    check_analysis_flags(
        **flags, attention=attention, runtime=runtime, text_only=params["text_only"]
    )  # one line, exit 1
    if out_dir is not None:
        check_output_folder(out_dir, recognise=COMPARE_FILES)
    options = AnalysisOptions(
        **flags,
        attention=attention or default_attention(flags["model"]),
        trust_remote_code=params["trust_remote_code"],
        runtime=runtime,
        text_only=params["text_only"],
    )
    with StepProgress(quiet=quiet) as progress:
        result = run_analysis(options, progress=progress)
        progress(f"timing on {len(ids)} devices")
        comparison = compare_devices(result, ids)
    text = render_compare_md(comparison)
    payload = json.dumps(render_compare_json(comparison), indent=2) + "\n"
    if out_dir is not None:
        try:
            with staged_directory(out_dir, recognise=COMPARE_FILES) as stage:
                (stage / "compare.md").write_text(text, encoding="utf-8")
                (stage / "compare.json").write_text(payload, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write to {out_dir}: {exc.strerror or exc}; choose another --out") from None
    click.echo(payload if fmt == "json" else text, nl=False)
