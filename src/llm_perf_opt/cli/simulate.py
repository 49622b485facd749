"""``llm-perf-opt simulate``: continuous-batching serving of DeepSeek-OCR on one device, timed by a runtime model.

Prints a text summary (or ``--format json``: one object with throughput, TTFT/TPOT/e2e percentiles, memory,
preemptions and the runtime and scheduler settings); ``--out DIR`` writes ``simulate.json``, ``simulate.md`` and
the plots (throughput against latency over concurrency; KV cache and batch size over time), atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.core import check_output_folder, staged_directory
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.serving import simulation_markdown, simulation_text
from llm_perf_opt.serving.memory import ModelConfig
from llm_perf_opt.serving.plan import concurrency_grid
from llm_perf_opt.serving.requests import LengthDistribution, load_lengths
from llm_perf_opt.serving.session import (
    MODELS,
    Prepared,
    SimulateOptions,
    TimerFactory,
    builtin_config,
    curve,
    prepare,
)
from llm_perf_opt.serving.settings import RUNTIMES
from llm_perf_opt.serving.timing import runtime_timer

__all__ = [
    "SIMULATE_FILES",
    "TIMER_FACTORY",
    "parse_image",
    "parse_lengths",
    "resolve_config",
    "simulate",
    "workload_options",
]

TIMER_FACTORY: dict[str, TimerFactory] = {"default": runtime_timer}
"""The timer factory the commands use (tests swap in closed-form timers here)."""

F = TypeVar("F", bound=Callable[..., Any])

SIMULATE_FILES = ("simulate.json", "simulate.md")
"""Files that mark a folder as an earlier simulation: ``--out`` may replace it whole."""


def parse_image(text: str) -> tuple[int, int]:
    """``"1024x1024"`` -> ``(1024, 1024)`` pixels."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise UserError(f"--image takes WIDTHxHEIGHT in pixels (e.g. 1024x1024), got {text!r}")
    return int(width), int(height)


def parse_lengths(text: str, flag: str) -> int | LengthDistribution:
    """A fixed token count, or a length file (``.csv`` with a ``tokens`` column, ``.json`` with a ``tokens`` list)."""
    if text.strip().lstrip("-").isdigit():
        value = int(text)
        if value < (0 if flag == "--prompt-tokens" else 1):
            raise UserError(f"{flag} must be >= {0 if flag == '--prompt-tokens' else 1}, got {value}")
        return value
    if not text.lower().endswith((".csv", ".json")):
        raise UserError(f"{flag} takes a token count or a length file (.csv or .json), got {text!r}")
    return load_lengths(text)


def workload_options(fn: F) -> F:
    """The flags ``simulate`` and ``plan`` share: model, runtime, dtype, request mix, scheduler overrides, seed."""
    options = [
        click.option("--model", default="deepseek-ocr-v1-base", show_default=True, help=f"One of {', '.join(MODELS)}."),
        click.option("--runtime", default="vllm", show_default=True, help=f"One of {', '.join(RUNTIMES)}."),
        click.option("--dtype", default="bf16", show_default=True, help="bf16 or fp16."),
        click.option("--mode", default=None, help="Resolution mode of the pages [default: gundam; OCR-2: dynamic]."),
        click.option("--image", default=None, help="Page size WxH in pixels [default: 1024x1024]."),
        click.option("--text-only", is_flag=True, help="Requests carry no page (prompt tokens only)."),
        click.option("--prompt-tokens", default="9", show_default=True, help="Text prompt tokens, or a length file."),
        click.option("--output-tokens", default="512", show_default=True, help="Output tokens, or a length file."),
        click.option(
            "--requests",
            type=int,
            default=None,
            help=(
                "Requests to simulate [default: 1000; plan: per concurrency C, max(4 x C, 16), or this when larger]."
            ),
        ),
        click.option("--max-num-seqs", type=int, default=None, help="Override the runtime's default."),
        click.option("--max-num-batched-tokens", type=int, default=None, help="Override the runtime's default."),
        click.option("--gpu-memory-utilization", type=float, default=None, help="Override the runtime's default."),
        click.option("--repetition-share", type=float, default=0.0, show_default=True, help="Pages that loop."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the request and arrival draws."),
        click.option("--quiet", is_flag=True, default=False, help="No progress on stderr."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_config(model: str) -> ModelConfig:
    """The model's config: v1 built in; DeepSeek-OCR-2's read from its published config by ``sources``."""
    if model == "deepseek-ocr-2":
        # lazy: sources imports torch, needed only for this model's config file
        from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config

        return analytic_config()
    return builtin_config(model)


def options_from_flags(flags: dict[str, Any], *, device: str) -> SimulateOptions:
    """The shared flags (and ``--concurrency``/``--rate`` when present) as :class:`SimulateOptions`."""
    if flags["text_only"] and (flags["mode"] is not None or flags["image"] is not None):
        raise UserError("--text-only requests carry no page; drop --mode/--image (or --text-only)")
    return SimulateOptions(
        model=flags["model"],
        runtime=flags["runtime"],
        device=device,
        dtype=flags["dtype"],
        mode=flags["mode"],
        image=parse_image(flags["image"] or "1024x1024"),
        text_only=flags["text_only"],
        prompt_tokens=parse_lengths(flags["prompt_tokens"], "--prompt-tokens"),
        output_tokens=parse_lengths(flags["output_tokens"], "--output-tokens"),
        concurrency=flags.get("concurrency"),
        rate=flags.get("rate"),
        requests=flags["requests"] if flags["requests"] is not None else 1000,
        max_num_seqs=flags["max_num_seqs"],
        max_num_batched_tokens=flags["max_num_batched_tokens"],
        gpu_memory_utilization=flags["gpu_memory_utilization"],
        repetition_share=flags["repetition_share"],
        seed=flags["seed"],
    )


def publish(out_dir: Path, files: dict[str, bytes], what: str, recognise: tuple[str, ...] = ()) -> None:
    """All of ``files`` under ``out_dir`` at once (a staged folder), or nothing (``out_dir`` was checked at the door
    with :func:`~llm_perf_opt.core.check_output_folder` and the same ``recognise``)."""
    try:
        with staged_directory(out_dir, recognise=recognise) as stage:
            for rel, data in files.items():
                (stage / rel).write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write the {what} to {out_dir}: {exc.strerror or exc}; choose another --out") from None


def dumps(data: Any) -> str:
    """The project's JSON layout for command output (sorted keys, two-space indent)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _simulation_files(prepared: Prepared, metrics: dict[str, Any]) -> dict[str, bytes]:
    # lazy: matplotlib, only when files are written
    from llm_perf_opt.report.serving_plots import render_simulation_plots

    points = [(c, r.metrics) for c, r in curve(prepared, concurrency_grid(prepared.settings.max_num_seqs))]
    result = prepared.run()
    files = {
        "simulate.json": dumps(metrics).encode("utf-8"),
        "simulate.md": simulation_markdown(metrics, points).encode("utf-8"),
    }
    return files | render_simulation_plots(result, points)


@click.command(name="simulate")
@workload_options
@click.option("--device", default="h100-sxm", show_default=True, help="Catalog id (llm-perf-opt devices).")
@click.option("--concurrency", type=int, default=None, help="Closed loop: clients, each sends on completion.")
@click.option("--rate", type=float, default=None, help="Open loop: Poisson arrivals per second.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Write JSON, Markdown, plots.")
def simulate(device: str, fmt: str, out_dir: str | None, quiet: bool, **flags: Any) -> None:
    """Serve DeepSeek-OCR with continuous batching on one device: throughput, latency percentiles, KV cache."""
    options = options_from_flags(flags, device=device)
    if out_dir is not None:
        check_output_folder(Path(out_dir), recognise=SIMULATE_FILES)  # before any simulating
    with StepProgress(quiet=quiet) as progress:
        progress(f"simulate: preparing {options.model} on {device} ({options.runtime})")
        prepared = prepare(options, timer_factory=TIMER_FACTORY["default"], config_resolver=resolve_config)
        progress(f"simulating {options.requests} requests")
        result = prepared.run()
        if out_dir is not None:
            progress("simulating the concurrency curve and drawing the plots")
            files = _simulation_files(prepared, result.metrics)
            publish(Path(out_dir), files, "simulation", SIMULATE_FILES)
    if out_dir is not None:
        click.echo(f"wrote {len(files)} files to {out_dir}", err=True)
    if fmt == "json":
        click.echo(dumps(result.metrics), nl=False)
    else:
        click.echo(simulation_text(result.metrics), nl=False)
