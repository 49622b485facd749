"""``llm-perf-opt measure-memory``: add peak memory per stage to measurement files whose timings are kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from attrs import evolve

from llm_perf_opt.measure.record import load_measurement, save_measurement

__all__ = ["measure_memory"]


@click.command("measure-memory")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads for the untimed run")
def measure_memory(files: tuple[Path, ...], threads: int) -> None:
    """Run each FILE's model and workload once more, untimed, and store its peak memory per stage in FILE.

    The timings, kernel counts and run id stay as they were; the notes say when the memory was added. Use it for
    measurements taken before memory was recorded (schema 1); a CUDA measurement needs a CUDA GPU here.
    """
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.measure.harness import record_memory_for

    for path in files:
        measurement = load_measurement(path)
        memory = record_memory_for(measurement, threads=threads)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        note = f"memory added {stamp} by `llm-perf-opt measure-memory` (a later untimed run; timings unchanged)"
        notes = "; ".join(filter(None, [measurement.notes, note]))
        save_measurement(evolve(measurement, memory=memory, notes=notes), path)
        peaks = ", ".join(f"{s.stage} {s.peak_bytes / 1e6:,.1f} MB" for s in memory.stages)
        click.echo(f"{path}: {measurement.label()}")
        click.echo(f"  peak above weights ({memory.method}): {peaks}")
