"""``llm-perf-opt calibrate``: fit a device profile (efficiencies, per-kernel overhead) to measurement files."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from llm_perf_opt.cli.progress import StepProgress
from llm_perf_opt.core import atomic_write_text
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.record import Measurement, load_measurement
from llm_perf_opt.measure.validation import (
    calibration_case,
    device_key,
    fits_overlap,
    group_key,
    predict,
    rates_for,
)
from llm_perf_opt.perf.calibrate import DEFAULT_GROUPS, PER_CATEGORY_GROUPS, fit_device_profile
from llm_perf_opt.perf.efficiency import default_profile
from llm_perf_opt.report.humanize import plural

__all__ = ["calibrate"]


@click.command("calibrate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=".yaml or .json")
@click.option("--per-category", is_flag=True, help="fit one efficiency per operator category (needs varied data)")
@click.option("--quiet", is_flag=True, default=False, help="No progress on stderr.")
def calibrate(files: tuple[Path, ...], out: Path, per_category: bool, quiet: bool) -> None:
    """Fit efficiencies and the per-kernel overhead to measurements of ONE device and dtype; write a profile
    that `analyze --device-profile` reads."""
    # lazy: torch loads only when the command runs (--help imports every command module)
    from llm_perf_opt.measure.predict import cost_tree, counted_dtype
    from llm_perf_opt.measure.trace_pool import jobs_of, trace_jobs_ahead

    # the same files give the same profile in any order (the fit sums in this order; the source names them)
    loaded = [(path, load_measurement(path)) for path in files]
    _refuse_repeated_runs(loaded)
    measurements = sorted((m for _, m in loaded), key=lambda m: m.run_id)
    groups = sorted({group_key(m) for m in measurements})  # the grouping validation-doc fits by
    if len(groups) != 1:
        raise UserError(
            f"calibrate fits one device, dtype and MoE routing at a time, got {_described(measurements)}; "
            "pass the files of one of them"
        )
    device, dtype = device_key(measurements[0]), measurements[0].dtype
    with StepProgress(quiet=quiet) as progress:
        trace_jobs_ahead(jobs_of(measurements), progress=progress)  # each distinct shape once, over the cores
        trees = {}
        for index, m in enumerate(measurements, 1):
            progress(f"tracing the model of measurement {index}/{len(measurements)} ({m.run_id})")
            trees[m.run_id] = cost_tree(m)
        cases = [
            calibration_case(m, trees[m.run_id], counted_dtype=counted_dtype(m), peers=measurements)
            for m in measurements
        ]
        prior = default_profile("eager")
        names = ", ".join(m.run_id for m in measurements)
        progress(f"fitting efficiencies and per-kernel overhead to {len(cases)} measurement(s)")
        result = fit_device_profile(
            cases,
            prior=prior,
            device_id=device,
            source=f"llm-perf-opt calibrate on {names} ({measurements[0].device.name}, {dtype})",
            groups=PER_CATEGORY_GROUPS if per_category else DEFAULT_GROUPS,
            overlap=fits_overlap(measurements[0]),
        )
    data = result.profile.as_dict()
    text = (
        yaml.safe_dump(data, sort_keys=False)
        if out.suffix.lower() in {".yaml", ".yml"}
        else json.dumps(data, indent=2) + "\n"
    )
    atomic_write_text(out, text)
    click.echo(f"profile for {device} {dtype} written to {out} ({result.rounds} round(s))")
    click.echo(f"  parameters (condition number {result.condition_number:.3g}):")
    for parameter in result.parameters:
        click.echo(f"  {parameter.describe()}")
    click.echo("  measurement / stage: measured ms, uncalibrated ms (err), calibrated ms (err)")
    for m in measurements:
        before = predict(trees[m.run_id], rates_for(m, prior, counted_dtype=counted_dtype(m), peers=measurements))
        for r in (r for r in result.residuals if r.label == m.run_id):
            if r.stage not in before:  # a device-busy observation: the uncalibrated profile has no device side
                click.echo(
                    f"  {r.label} / {r.stage}: {r.measured_s * 1e3:.3f}, -, {r.predicted_s * 1e3:.3f} ({r.error:+.1%})"
                )
                continue
            uncal = before[r.stage]
            before_err = uncal / r.measured_s - 1
            click.echo(
                f"  {r.label} / {r.stage}: {r.measured_s * 1e3:.3f}, {uncal * 1e3:.3f} ({before_err:+.1%}), "
                f"{r.predicted_s * 1e3:.3f} ({r.error:+.1%})"
            )


def _described(measurements: list[Measurement]) -> str:
    """``h100-sxm bf16 gate routing (4 files), h100-sxm bf16 balanced routing (5 files)``: each group and its size."""
    sizes: dict[str, int] = {}
    for m in measurements:
        label = f"{device_key(m)} {m.dtype} {m.routing} routing"
        sizes[label] = sizes.get(label, 0) + 1
    return ", ".join(f"{label} ({plural(n, 'file')})" for label, n in sorted(sizes.items()))


def _refuse_repeated_runs(loaded: list[tuple[Path, Measurement]]) -> None:
    """One run given twice (the same file, or a copy) would weigh twice in the fit: refused, naming its files."""
    where: dict[str, list[str]] = {}
    for path, measurement in loaded:
        where.setdefault(measurement.run_id, []).append(str(path))
    for run_id, paths in where.items():
        if len(paths) > 1:
            given = f"{len(paths)} times ({', '.join(paths)})"
            raise UserError(f"measurement {run_id} is given {given}; pass each run once")
