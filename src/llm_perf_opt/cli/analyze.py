"""``llm-perf-opt analyze``: trace, validate, time and report one workload on one device."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar, cast

import click

from llm_perf_opt.admission import check_analysis_flags
from llm_perf_opt.analysis.options import AnalysisOptions, default_attention
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.runtimes.bands import trust_line
from llm_perf_opt.store import ReportStore

__all__ = ["analyze", "parse_page", "run_options", "runtime_options", "workload_flags", "workload_options"]


class _WorkloadFlags(TypedDict):
    """The flags ``analyze`` both checks at the door and runs with, as they were given (one set, so the two agree)."""

    model: str
    workload_id: str
    mode: str | None
    page: tuple[int, int] | None
    prompt_tokens: int | None
    max_new_tokens: int | None
    batch_size: int | None
    device: str
    dtype: str
    routing: str


def workload_flags(params: Mapping[str, Any], **overrides: Any) -> _WorkloadFlags:
    """The workload flags out of a command's parsed parameters (click's ``ctx.params``), with ``overrides`` (compare
    passes its first device): the one set ``analyze`` and ``compare`` check at the door and run with."""
    given = {name: overrides[name] if name in overrides else params[name] for name in _WorkloadFlags.__annotations__}
    return cast(_WorkloadFlags, given)


def parse_page(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (W, H); the numbers' ranges are checked by the workload (one-line error, exit 1)."""
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise click.BadParameter(f"expected WIDTHxHEIGHT in pixels, e.g. 1024x1024; got {value!r}")
    return int(parts[0]), int(parts[1])


_F = TypeVar("_F", bound=Callable[..., Any])


def _shared(*options: Callable[[_F], _F]) -> Callable[[_F], _F]:
    """Apply ``options`` in the order given, as if stacked above the command: one definition of each flag that
    ``analyze`` and ``compare`` share."""

    def decorate(command: _F) -> _F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


workload_options = _shared(
    click.option(
        "--model",
        default="deepseek-ocr-v1-base",
        show_default=True,
        help="Model source: deepseek-ocr-v1-base, deepseek-ocr-v1-tiny, hf-snapshot:PATH, hf:REPO@REVISION, "
        "deepseek-ocr-2.",
    ),
    click.option(
        "--workload", "workload_id", default="dsocr-standard-v1", show_default=True, help="Workload preset id."
    ),
    click.option("--mode", default=None, help="Resolution mode override: tiny, small, base, large, gundam, gundam-m."),
    click.option("--image", "page", default=None, callback=parse_page, metavar="WxH", help="Page size override (px)."),
    click.option("--prompt-tokens", type=int, default=None, help="Prompt length override (text tokens)."),
    click.option("--max-new-tokens", type=int, default=None, help="Generated tokens override (N)."),
    click.option("--batch", "batch_size", type=int, default=None, help="Pages per forward override (B)."),
)
"""The workload flags (model, preset and its overrides)."""

run_options = _shared(
    click.option("--dtype", default="bf16", show_default=True, help="Weights/activations dtype."),
    click.option(
        "--attention",
        type=click.Choice(["flash", "eager"]),
        default=None,
        help="Attention kernel whose FLOPs and bytes feed time [default: flash; eager for hf-snapshot:/hf: sources, "
        "whose remote code runs eager only].",
    ),
    click.option(
        "--routing",
        default="balanced",
        show_default=True,
        help="MoE routing model: balanced, skewed:ALPHA, histogram:FILE.",
    ),
)
"""How the counts are taken: dtype, attention kernel, MoE routing."""

runtime_options = _shared(
    click.option(
        "--trust-remote-code", is_flag=True, default=False, help="Allow running a model source's remote code."
    ),
    click.option(
        "--runtime",
        default="hf-eager",
        show_default=True,
        help="Inference runtime whose kernels time the model: hf-eager, hf-flash, hf-cuda-graph, vllm, sglang.",
    ),
    click.option(
        "--text-only", is_flag=True, default=False, help="Time a request with no image (S = prompt tokens + BOS)."
    ),
)
"""Which runtime times the request, and whether it carries a page."""


@click.command()
@workload_options
@click.option("--device", default="h100-sxm", show_default=True, help="Device id (see `llm-perf-opt devices`).")
@run_options
@click.option(
    "--measured",
    type=click.Path(dir_okay=False),
    default=None,
    help="Measurement JSON (from `llm-perf-opt measure`) to compare against.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    default=False,
    help="Compare a --measured run taken on another device, dtype, attention, workload or runtime (flagged).",
)
@click.option(
    "--device-profile",
    type=click.Path(dir_okay=False),
    default=None,
    help="Calibrated device profile: a file (from `llm-perf-opt calibrate`) or a shipped name, e.g. "
    "h100-sxm-hf-eager-gate.",
)
@runtime_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Output folder (files appear complete or not at all).",
)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also publish the report into this report store (shared with `llm-perf-opt serve`).",
)
@click.option(
    "--no-cache",
    is_flag=True,
    default=False,
    help="Trace again instead of reading the trace cache ($LLM_PERF_OPT_CACHE_DIR; see "
    "`llm-perf-opt cache info`); nothing is stored either.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["path", "json"]),
    default="path",
    show_default=True,
    help="stdout: the path of report.md, or the summary (summary.json plus the headline numbers) as JSON.",
)
@click.option("--quiet", is_flag=True, default=False, help="No progress on stderr.")
def analyze(
    model: str,
    workload_id: str,
    mode: str | None,
    page: tuple[int, int] | None,
    prompt_tokens: int | None,
    max_new_tokens: int | None,
    batch_size: int | None,
    device: str,
    dtype: str,
    attention: str | None,
    routing: str,
    measured: str | None,
    allow_mismatch: bool,
    device_profile: str | None,
    trust_remote_code: bool,
    runtime: str,
    text_only: bool,
    out_dir: Path,
    store_dir: Path | None,
    no_cache: bool,
    fmt: str,
    quiet: bool,
) -> None:
    """Trace DeepSeek-OCR on the meta device for one workload and write the report folder.

    Writes model.json, summary.json, report.yaml, validation.json, report.md (with plots/) and layers/*.md.
    """
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.analysis.pipeline import run_analysis
    from llm_perf_opt.core import check_output_folder
    from llm_perf_opt.report.files import REPORT_FILES, write_report

    flags = workload_flags(click.get_current_context().params)
    check_analysis_flags(**flags, attention=attention, runtime=runtime, text_only=text_only)
    options = AnalysisOptions(
        **flags,
        attention=attention or default_attention(model),
        measured=measured,
        allow_mismatch=allow_mismatch,
        device_profile=device_profile,
        trust_remote_code=trust_remote_code,
        runtime=runtime,
        text_only=text_only,
    )
    check_output_folder(out_dir, recognise=REPORT_FILES)
    with StepProgress(quiet=quiet) as progress:
        result = run_analysis(options, progress=progress, use_cache=not no_cache, prepare_batches=True)
        progress(f"writing the report to {out_dir}")
        written = write_report(result, out_dir)
        if store_dir is not None:
            progress(f"publishing {result.report_id} into the store {store_dir}")
            ReportStore(store_dir).publish(result.report_id, written, replace=True)
    s = result.stages
    if not quiet:
        click.echo(
            f"{result.workload.describe()} on {result.device.name} "
            f"({result.dtype}, {options.attention} attention, runtime {options.runtime})",
            err=True,
        )
        tpot = f"  TPOT {s.tpot_s * 1e3:.2f} ms" if s.decode_steps else "  (no decode step)"
        click.echo(f"TTFT {s.ttft_s * 1e3:.1f} ms{tpot}  end-to-end {s.end_to_end_s * 1e3:.1f} ms", err=True)
    if fmt == "json":
        click.echo(json.dumps(summary_payload(result, written, out_dir), indent=2))
        return
    click.echo(str(out_dir / "report.md") if "report.md" in written else str(out_dir))


def summary_payload(result: Any, written: Mapping[str, bytes], out_dir: Path) -> dict[str, Any]:
    """What ``--format json`` prints: ``summary.json`` as written, plus the headline numbers a script wants
    (stage times in ms, throughput, memory, fit), which runtime and device profile made the times and how far they can
    be trusted (as report.md and report.yaml say: the times are calibrated when the runtime reads the device profile
    and it was fitted on this device), and where the report folder is."""
    s, t, m, c = result.stages, result.throughput, result.memory, result.capacity
    calibrated = result.calibrated
    return {
        "summary": json.loads(written["summary.json"]),
        "headline": {
            "device": result.device.device_id,
            "dtype": result.dtype,
            "runtime": result.options.runtime,
            "profile": result.profile.source,
            "calibrated": calibrated,
            "expected_error": trust_line(
                result.options.runtime,
                calibrated=calibrated,
                device_id=result.device.device_id,
                model=result.options.model,
            ).removeprefix("expected error: "),
            "ttft_ms": s.ttft_s * 1e3,
            "tpot_ms": s.tpot_s * 1e3 if s.decode_steps else None,
            "end_to_end_ms": s.end_to_end_s * 1e3,
            "tokens_per_s": t.tokens_per_s if c.fits else None,
            "pages_per_day": t.pages_per_day if c.fits and not result.workload.text_only else None,
            "memory_bytes": m.total_bytes,
            "fits": c.fits,
            "max_batch": c.max_batch,
        },
        "report": str(out_dir),
    }


if __name__ == "__main__":  # pragma: no cover
    analyze(sys.argv[1:])
