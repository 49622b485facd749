"""``llm-perf-opt measure``: run the built-in model for real (random weights) and write a measurement JSON."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from attrs import evolve

from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.record import save_measurement
from llm_perf_opt.workloads import Workload, get_preset

__all__ = ["check_workload_flags", "measure", "parse_page", "resolve_workload"]

_PAGE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_page(text: str) -> tuple[int, int]:
    """``"1024x1024"`` -> ``(1024, 1024)``; anything else is a one-line :class:`UserError`."""
    match = _PAGE.match(text)
    if not match:
        raise UserError(f"page must be WIDTHxHEIGHT in px (e.g. 1024x1024), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def check_workload_flags(
    *, workload_id: str | None, mode: str | None, page: str | None, prompt_tokens: int | None
) -> None:
    """The workload flags name exactly one workload (a preset, or a mode and a page): checked before torch loads."""
    if workload_id is not None:
        if mode is not None or page is not None or prompt_tokens is not None:
            raise UserError("--workload fixes mode, page and prompt; drop --mode/--page/--prompt-tokens or --workload")
        return
    if mode is None or page is None:
        given = f"--mode {mode} has no --page WxH; " if mode is not None else ""
        given += f"--page {page} has no --mode MODE; " if page is not None else ""
        raise UserError(f"{given}give a workload: --workload ID, or --mode MODE and --page WxH")
    parse_page(page)


def resolve_workload(
    *,
    config: Any,
    workload_id: str | None,
    mode: str | None,
    page: str | None,
    prompt_tokens: int | None,
    max_new_tokens: int | None,
    batch: int | None,
) -> tuple[Any, str | None]:
    """The resolved workload and the preset id it still equals (None once a flag changes the preset)."""
    check_workload_flags(workload_id=workload_id, mode=mode, page=page, prompt_tokens=prompt_tokens)
    if workload_id is not None:
        profile = get_preset(workload_id)
        new_tokens = profile.max_new_tokens if max_new_tokens is None else max_new_tokens
        batch_size = profile.batch_size if batch is None else batch
        changed = (new_tokens, batch_size) != (profile.max_new_tokens, profile.batch_size)
        workload = Workload.from_profile(
            evolve(profile, max_new_tokens=new_tokens, batch_size=batch_size), config=config
        )
        return workload, None if changed else workload_id
    assert mode is not None and page is not None  # check_workload_flags
    workload = Workload.create(
        mode=mode,
        page=parse_page(page),
        prompt_tokens=9 if prompt_tokens is None else prompt_tokens,
        max_new_tokens=32 if max_new_tokens is None else max_new_tokens,
        batch_size=1 if batch is None else batch,
        config=config,
    )
    return workload, None


@click.command("measure")
@click.option("--model", "model", default="deepseek-ocr-v1-tiny", show_default=True, help="built-in model variant")
@click.option("--runtime-device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--workload", "workload_id", default=None, help="preset id (e.g. dsocr-standard-v1)")
@click.option("--mode", default=None, help="resolution mode (tiny small base large gundam gundam-m)")
@click.option("--page", "--image", "page", default=None, help="page size WIDTHxHEIGHT in px")
@click.option("--prompt-tokens", type=int, default=None, help="text tokens after the image [9]")
@click.option("--max-new-tokens", type=int, default=None, help="tokens to generate [32, or the preset's]")
@click.option("--batch", type=int, default=None, help="sequences per forward [1]")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None, help="[fp32 on cpu, bf16 on cuda]")
@click.option(
    "--attention",
    "attentions",
    type=click.Choice(["eager", "sdpa"]),
    multiple=True,
    default=("eager",),
    show_default=True,
    help="decoder attention; give it twice to time both round-robin in one process (--out then needs {attention})",
)
@click.option(
    "--routing",
    type=click.Choice(["gate", "balanced"]),
    default="gate",
    show_default=True,
    help="MoE slice sizes: the random gate's own decisions, or the balanced model predictions assume",
)
@click.option("--warmup", type=int, default=1, show_default=True, help="untimed warm-up runs")
@click.option("--warmup-decode-steps", type=int, default=None, help="decode steps per warm-up run [all]")
@click.option("--repeats", type=int, default=3, show_default=True, help="timed runs")
@click.option(
    "--statistic",
    type=click.Choice(["median", "min"]),
    default="median",
    show_default=True,
    help="summary over repeats (min: for a CPU shared with other processes)",
)
@click.option("--threads", type=int, default=None, help="CPU threads [1 on cpu: stable timings]")
@click.option("--device-id", default=None, help="hardware catalog id of the GPU [guessed from its name]")
@click.option("--no-profile", is_flag=True, help="skip counting launches per decode step")
@click.option("--no-memory", is_flag=True, help="skip the untimed run that records peak memory per stage")
@click.option("--no-benchmark", is_flag=True, help="skip the matmul/copy micro-benchmarks")
@click.option("--notes", default="", help="free text stored in the file")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="measurement JSON; {attention} in the name is replaced by the attention",
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def measure(
    model: str,
    runtime_device: str,
    workload_id: str | None,
    mode: str | None,
    page: str | None,
    prompt_tokens: int | None,
    max_new_tokens: int | None,
    batch: int | None,
    dtype: str | None,
    attentions: tuple[str, ...],
    routing: str,
    warmup: int,
    warmup_decode_steps: int | None,
    repeats: int,
    statistic: str,
    threads: int | None,
    device_id: str | None,
    no_profile: bool,
    no_memory: bool,
    no_benchmark: bool,
    notes: str,
    out: Path,
    quiet: bool,
) -> None:
    """Run MODEL for real on the CPU or a CUDA GPU and time vision, projector, prefill and every decode step."""
    check_workload_flags(workload_id=workload_id, mode=mode, page=page, prompt_tokens=prompt_tokens)
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.measure.harness import HarnessOptions, builtin_config, run_measurements

    if repeats < 1 or warmup < 0:
        raise UserError(f"--repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    chosen = tuple(dict.fromkeys(attentions))  # order kept, repeats dropped
    if len(chosen) > 1 and "{attention}" not in str(out):
        raise UserError(
            f"--out {out} names one file but {len(chosen)} attentions are measured; put {{attention}} in the name, "
            "e.g. --out 'run-{attention}.json'"
        )
    outs = {a: Path(str(out).replace("{attention}", a)) for a in chosen}
    config = builtin_config(model)
    workload, preset = resolve_workload(
        config=config,
        workload_id=workload_id,
        mode=mode,
        page=page,
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        batch=batch,
    )
    options = HarnessOptions(
        runtime_device="cuda" if runtime_device == "cuda" else "cpu",
        dtype=dtype or ("bf16" if runtime_device == "cuda" else "fp32"),
        attention="sdpa" if chosen[0] == "sdpa" else "eager",
        routing="balanced" if routing == "balanced" else "gate",
        warmup_runs=warmup,
        warmup_decode_steps=warmup_decode_steps,
        repeats=repeats,
        statistic="min" if statistic == "min" else "median",
        threads=threads if threads is not None else (1 if runtime_device == "cpu" else None),
        profile_kernels=not no_profile,
        record_memory=not no_memory,
        benchmark=not no_benchmark,
        device_id=device_id,
        workload_id=preset,
        notes=notes,
    )
    with StepProgress(quiet=quiet) as progress:
        results = run_measurements(
            config,
            workload,
            options,
            attentions=tuple("sdpa" if a == "sdpa" else "eager" for a in chosen),
            model_name=model,
            progress=progress,
        )
    for result in results:
        path = outs[result.attention]
        save_measurement(result, path)
        t = result.timings()
        ms = {
            k: f"{v * 1e3:.3f} ms"
            for k, v in (
                ("vision", t.vision_s),
                ("projector", t.projector_s),
                ("prefill", t.prefill_s),
                ("TTFT", t.ttft_s),
                ("TPOT", t.tpot_s or 0.0),
                ("end to end", t.end_to_end_s),
            )
        }
        click.echo(f"{result.run_id}: {result.label()}")
        click.echo("  " + ", ".join(f"{k} {v}" for k, v in ms.items()))
        if result.memory is not None:
            peaks = ", ".join(f"{s.stage} {s.peak_bytes / 1e6:,.1f} MB" for s in result.memory.stages)
            click.echo(f"  peak above weights ({result.memory.method}): {peaks}")
        click.echo(f"  written to {path}")
