"""``llm-perf-opt devices``: the hardware catalog - dense peaks, memory, SMs and each device's source."""

from __future__ import annotations

import json

import click

from llm_perf_opt.hardware import DTYPES, DeviceSpec, list_devices

__all__ = ["devices"]

_HEADER = ("id", "name", *(f"{d} TFLOP/s" for d in DTYPES), "mem TB/s", "mem GB", "SMs", "source date")


def _text_row(spec: DeviceSpec) -> tuple[str, ...]:
    peaks = tuple(f"{spec.peak_flops[d] / 1e12:g}" if d in spec.peak_flops else "-" for d in DTYPES)
    return (
        spec.device_id,
        spec.name,
        *peaks,
        f"{spec.memory_bandwidth_bytes_per_s / 1e12:g}",
        f"{spec.memory_capacity_bytes / 1e9:g}",
        str(spec.sm_count),
        spec.source_date,
    )


def _text_table(specs: list[DeviceSpec]) -> str:
    rows = [_HEADER, *(_text_row(s) for s in specs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    note = "Dense peaks (no 2:4 sparsity); fp32 = CUDA cores, others tensor cores with FP32 accumulate."
    return "\n".join([*lines, "", note, "Sources: llm-perf-opt devices --format json"])


@click.command(name="devices")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a table in TFLOP/s, TB/s and GB; json: every field in SI units with its source.",
)
def devices(fmt: str) -> None:
    """List the GPUs the time model knows: dense peak FLOP/s per dtype, memory bandwidth and capacity, SMs."""
    specs = list_devices()
    if fmt == "json":
        click.echo(json.dumps([s.as_dict() for s in specs], indent=2))
    else:
        click.echo(_text_table(specs))
