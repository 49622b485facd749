"""``llm-perf-opt sweep``: a what-if table over devices x modes/pages x batch sizes x output lengths x dtypes.

Counts come from the analytic model (no tracing, no torch); each distinct workload is costed once and re-timed for
every device and dtype.  Without ``--out`` the Markdown table goes to stdout (``--format csv`` for CSV); with
``--out DIR`` the folder gets ``sweep.csv`` (every column), ``sweep.md`` (the readable columns) and the plot
``sweep.png`` / ``sweep.svg``, all published atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from llm_perf_opt.admission import check_sweep_flags
from llm_perf_opt.cli.lists import comma_values, distinct
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import check_output_folder, staged_directory
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf import DeviceProfile, Rates, load_device_profile
from llm_perf_opt.perf.named_profiles import resolve_profile_path
from llm_perf_opt.perf.sweep import SweepResult, SweepSpec, rows_to_csv, rows_to_markdown, run_sweep
from llm_perf_opt.runtimes import Runtime, get_runtime
from llm_perf_opt.runtimes.bands import by_device, trust_line
from llm_perf_opt.runtimes.costs import check_supported
from llm_perf_opt.runtimes.request import runtime_run
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.modes import get_mode

__all__ = ["MD_COLUMNS", "parse_int_list", "parse_pages", "sweep"]

SWEEP_FILES = ("sweep.csv", "sweep.md")
"""Files that mark a folder as an earlier sweep: ``--out`` may replace it whole."""

MD_COLUMNS: tuple[str, ...] = (
    "device",
    "dtype",
    "mode",
    "page_width",
    "page_height",
    "batch_size",
    "max_new_tokens",
    "seq_len",
    "ttft_ms",
    "tpot_ms",
    "end_to_end_ms",
    "tokens_per_s",
    "pages_per_day",
    "memory_gb",
    "fits",
    "max_batch",
)
"""Columns of the Markdown table (the CSV has all of them)."""


def parse_int_list(text: str, flag: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; each must be a positive integer."""
    out = []
    for item in comma_values(text, flag):
        if not item.isdigit() or int(item) < 1:
            raise UserError(f"{flag} takes positive integers separated by commas (e.g. 1,8), got {item!r}")
        out.append(int(item))
    return distinct(out, flag, text)  # "8,08" is one batch


def parse_pages(text: str) -> list[tuple[int, int]]:
    """``"1024x1024,1240x1754"`` -> page sizes in pixels."""
    out = []
    for item in comma_values(text, "--page"):
        width, sep, height = item.lower().partition("x")
        if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
            raise UserError(f"--page takes WIDTHxHEIGHT in pixels separated by commas (e.g. 1024x1024), got {item!r}")
        out.append((int(width), int(height)))
    return distinct(out, "--page", text)


@click.command(name="sweep")
@click.option("--device", "devices", default="h100-sxm", show_default=True, help="Catalog ids, comma-separated.")
@click.option("--mode", "modes", default="gundam", show_default=True, help="Resolution modes, comma-separated.")
@click.option("--page", "pages", default="1024x1024", show_default=True, help="Page sizes WxH, comma-separated.")
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, comma-separated.")
@click.option("--max-new-tokens", "lengths", default="512", show_default=True, help="Output lengths, comma-separated.")
@click.option("--dtype", "dtypes", default="bf16", show_default=True, help="Dtypes, comma-separated.")
@click.option("--prompt-tokens", type=click.IntRange(min=0), default=9, show_default=True)
@click.option("--attention", type=click.Choice(["flash", "eager"]), default="flash", show_default=True)
@click.option("--routing", default="balanced", show_default=True, help="balanced, skewed:ALPHA or histogram:FILE.")
@click.option(
    "--runtime",
    default="hf-eager",
    show_default=True,
    help="Inference runtime whose kernels time each point: hf-eager, hf-flash, hf-cuda-graph, vllm, sglang.",
)
@click.option("--execution", type=click.Choice(["eager", "cuda-graph"]), default=None, hidden=True)
@click.option(
    "--device-profile",
    type=click.Path(dir_okay=False),
    default=None,
    help="Calibrated device profile: a file (from `llm-perf-opt calibrate`) or a shipped name, e.g. "
    "h100-sxm-hf-eager-gate.",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Write the files here.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
@click.option("--quiet", is_flag=True, default=False, help="No progress on stderr.")
def sweep(
    devices: str,
    modes: str,
    pages: str,
    batches: str,
    lengths: str,
    dtypes: str,
    prompt_tokens: int,
    attention: str,
    routing: str,
    runtime: str,
    execution: str | None,
    device_profile: str | None,
    out_dir: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """What-if table over devices, modes/pages, batch sizes and output lengths (analytic model, no tracing)."""
    if execution is not None:
        runtime = {"eager": "hf-eager", "cuda-graph": "hf-cuda-graph"}[execution]
        click.echo(f"warning: --execution is deprecated; use --runtime {runtime}", err=True)
    chosen = get_runtime(runtime)
    check_supported(chosen, attention=attention)
    device_list, mode_list, page_list = (
        comma_values(devices, "--device"),
        comma_values(modes, "--mode"),
        parse_pages(pages),
    )
    batch_list, length_list = parse_int_list(batches, "--batch"), parse_int_list(lengths, "--max-new-tokens")
    dtype_list = comma_values(dtypes, "--dtype")
    check_sweep_flags(
        devices=device_list,
        modes=mode_list,
        pages=page_list,
        batch_sizes=batch_list,
        max_new_tokens=length_list,
        dtypes=dtype_list,
        prompt_tokens=prompt_tokens,
        routing=routing,
        runtime=runtime,
        attention=attention,
    )
    spec = SweepSpec(
        devices=device_list,
        pages=[(mode, page) for mode in mode_list for page in page_list],
        batch_sizes=batch_list,
        max_new_tokens=length_list,
        dtypes=dtype_list,
        prompt_tokens=prompt_tokens,
        attention=attention,
        routing=RoutingModel.parse(routing),
    )
    profiles = None
    if device_profile is not None:
        profile = load_device_profile(resolve_profile_path(device_profile))
        profiles = dict.fromkeys(spec.devices, profile) if profile.device_id == "*" else {profile.device_id: profile}
    for device_id in spec.devices:
        get_device(device_id)  # unknown ids fail here, before any output
    for mode, _ in spec.pages:
        get_mode(mode)
    if out_dir is not None:
        check_output_folder(Path(out_dir), recognise=SWEEP_FILES)
    stage_fn = None if chosen.is_baseline else _runtime_stages(runtime, attention, spec.routing)
    with StepProgress(quiet=quiet) as progress:
        progress(f"sweep: timing {spec.num_points} point(s)")
        result = run_sweep(spec, profiles=profiles, stage_fn=stage_fn)
        if not result.rows:
            raise UserError(f"no point of the sweep can be timed: {_first_notes(result.skipped)}")
        if out_dir is not None:
            progress("drawing sweep.png and writing the tables")
            files = _files(spec, result, runtime, calibrated=_calibrated(spec, profiles, chosen))
            _publish(Path(out_dir), files)
    for note in result.skipped:
        click.echo(f"skipped: {note}", err=True)
    if out_dir is None:
        text = rows_to_csv(result.rows) if fmt == "csv" else rows_to_markdown(result.rows, MD_COLUMNS)
        click.echo(text, nl=False)
        return
    click.echo(f"wrote {len(files)} files to {out_dir} ({len(result.rows)} rows)", err=True)


def _first_notes(notes: Sequence[str], shown: int = 3) -> str:
    more = f"; and {len(notes) - shown} more" if len(notes) > shown else ""
    return "; ".join(notes[:shown]) + more


def _runtime_stages(
    runtime: str, attention: str, routing: RoutingModel
) -> Callable[[Workload, Rates], dict[str, float]]:
    """Stage seconds of a sweep point as ``runtime`` runs it under ``routing`` (the same model as ``analyze
    --runtime``)."""
    config = DeepseekOCRConfig.base()

    def stages(workload: Workload, rates: Rates) -> dict[str, float]:
        s = runtime_run(
            runtime=runtime,
            config=config,
            workload=workload,
            device=rates.device_id,
            dtype=rates.dtype,
            attention=attention,
            routing=routing,
        ).stages
        return {"vision": s.vision_s, "projector": s.projector_s, "prefill": s.prefill_s, "decode": s.decode_s}

    return stages


def _calibrated(spec: SweepSpec, profiles: dict[str, DeviceProfile] | None, runtime: Runtime) -> bool:
    """Every device of the grid is timed with a profile fitted on that device that ``runtime`` reads
    (:meth:`Runtime.calibrated_by`)."""
    if not profiles:
        return False
    return all(
        device in profiles and runtime.calibrated_by(profile_device=profiles[device].device_id, device_id=device)
        for device in spec.devices
    )


def _trust(runtime: str, devices: Sequence[str], *, calibrated: bool) -> str:
    """The trust line of each device of the grid (a measured band holds only on the devices it was measured on)."""
    # the sweep's analytic model is the built-in DeepSeek-OCR v1's
    return by_device(
        lambda d: trust_line(runtime, calibrated=calibrated, device_id=d, model="deepseek-ocr-v1-base"), devices
    )


def _files(spec: SweepSpec, result: SweepResult, runtime: str, *, calibrated: bool) -> dict[str, bytes]:
    # lazy: matplotlib loads only when files are written
    from llm_perf_opt.report.plots import render_sweep_plot

    grid = (
        f"devices {', '.join(spec.devices)}; pages "
        + ", ".join(f"{m} {w}x{h}" for m, (w, h) in spec.pages)
        + f"; batch {', '.join(map(str, spec.batch_sizes))}; max_new_tokens {', '.join(map(str, spec.max_new_tokens))}"
        + f"; dtypes {', '.join(spec.dtypes)}; prompt {spec.prompt_tokens} tokens; {spec.attention} attention; "
        f"routing {spec.routing.describe()}; runtime {runtime}"
    )
    skipped = "".join(f"- skipped: {s}\n" for s in result.skipped)
    md = (
        "# What-if sweep\n\n"
        f"Grid: {grid}. Counts from the analytic model; time on each device's roofline. "
        f"Time from runtime {runtime}; {_trust(runtime, spec.devices, calibrated=calibrated)}. "
        "Times in ms, memory in GB (1e9 B). `sweep.csv` has every column.\n\n"
        + rows_to_markdown(result.rows, MD_COLUMNS)
        + ("\n" + skipped if skipped else "")
        + "\n![Pages per day against batch size](sweep.png) ([SVG](sweep.svg))\n"
    )
    files = {"sweep.csv": rows_to_csv(result.rows).encode("utf-8"), "sweep.md": md.encode("utf-8")}
    files.update(render_sweep_plot(result.rows))
    return files


def _publish(out_dir: Path, files: dict[str, bytes]) -> None:
    try:
        with staged_directory(out_dir, recognise=SWEEP_FILES) as stage:
            for rel, data in files.items():
                (stage / rel).write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write the sweep to {out_dir}: {exc.strerror or exc}; choose another --out") from None
