"""``llm-perf-opt validation-doc``: regenerate docs/validation.md from benchmarks/measurements/*.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llm_perf_opt.cli.pages import page_options, write_or_check
from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.compare import compare_memory
from llm_perf_opt.measure.record import load_measurement
from llm_perf_opt.measure.validation import validate
from llm_perf_opt.measure.validation_md import render_validation

__all__ = ["COMMAND", "MEMORY_DIR", "validation_doc"]

COMMAND = "llm-perf-opt validation-doc"

MEMORY_DIR = "memory"
"""Sub-folder of measurements taken for memory only (compared for memory, left out of the time calibration)."""


@click.command("validation-doc")
@page_options(
    source_flag="--measurements",
    source_default="benchmarks/measurements",
    source_help="folder of measurement JSON files",
    out_default="docs/validation.md",
)
@click.option("--quiet", is_flag=True, default=False, help="No progress on stderr.")
def validation_doc(source: Path, out: Path, check: bool, quiet: bool) -> None:
    """Predicted versus measured, per stage, uncalibrated and calibrated, for every measurement file."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.measure.predict import cost_tree, counted_dtype, predicted_stage_peaks
    from llm_perf_opt.measure.trace_pool import TracePool, jobs_of

    files = sorted(source.glob("*.json"))
    if not files:
        raise UserError(f"no measurement files (*.json) in {source}; write some with `llm-perf-opt measure --out`")
    measurements = [load_measurement(f) for f in files]
    memory_only = [load_measurement(f) for f in sorted((source / MEMORY_DIR).glob("*.json"))]
    with StepProgress(quiet=quiet) as progress:
        peaks = [m for m in [*measurements, *memory_only] if m.memory is not None]
        # each distinct shape once, over the cores: the cost trees first, the memory traces while profiles are fitted
        with TracePool.start(jobs_of(measurements), later=jobs_of((), memory=peaks), progress=progress) as pool:
            done = iter(range(1, len(measurements) + 1))

            def traced(measurement: Any) -> Any:
                index = next(done, len(measurements))
                progress(f"tracing the model of measurement {index}/{len(measurements)} ({measurement.run_id})")
                tree = cost_tree(measurement)
                if index == len(measurements):
                    progress("fitting the calibrated and leave-one-out profiles")
                return tree

            validation = validate(measurements, traced, counted_dtype=counted_dtype)
            progress("predicting the peak memory of the measured runs")
            pool.finish()
            memory = {m.run_id: compare_memory(predicted_stage_peaks(m), m) for m in peaks}
        progress("rendering the page")
        text = render_validation(
            validation, source_dir=source.as_posix(), command=COMMAND, memory=memory, memory_only=memory_only
        )
    write_or_check(out, text, check=check, source=source, command=COMMAND, counted=f"{len(files)} measurement(s)")
