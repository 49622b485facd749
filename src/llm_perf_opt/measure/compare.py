"""Predicted versus measured, stage by stage (torch-free; the analyze pipeline and the validation page use it).

A prediction is a mapping ``stage -> seconds`` with the stage names of ``docs/architecture.md``: ``vision``,
``projector``, ``prefill`` (decoder over the prompt) and ``decode`` (all decode steps of the workload, summed);
``other`` is accepted and counted in end-to-end only (as :class:`llm_perf_opt.perf.stages.StageTimes` does).
Ratios are ``predicted / measured``: 1.0 is a perfect prediction, 0.5 a prediction twice too fast.

Memory (:func:`compare_memory`): one :class:`MemoryRow` per stage the measurement recorded a peak for, bytes above
the resident weights, ``rel_error = predicted / measured - 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from llm_perf_opt.hardware import normalize_dtype
from llm_perf_opt.measure.record import Measurement, MeasurementError, WorkloadRecord

__all__ = [
    "COMPARED_STAGES",
    "PREDICTED_STAGES",
    "MemoryRow",
    "StageComparison",
    "StageRatio",
    "check_compatible",
    "compare",
    "compare_memory",
    "memory_rows_payload",
    "mismatches",
]

PREDICTED_STAGES = ("vision", "projector", "prefill", "decode", "other")
"""Keys a prediction may carry (seconds)."""

COMPARED_STAGES = ("vision", "projector", "prefill", "ttft", "tpot", "end_to_end")
"""Rows of a comparison: the three prefill stages, time to first token, time per output token, the whole run."""


@frozen(kw_only=True)
class StageRatio:
    """One compared quantity."""

    stage: str = field(metadata={"help": "one of COMPARED_STAGES"})
    predicted_s: float = field(metadata={"help": "predicted seconds"})
    measured_s: float = field(metadata={"help": "measured seconds (median over repeats)"})

    @property
    def ratio(self) -> float | None:
        """``predicted / measured``; None when nothing was measured (0 s)."""
        return self.predicted_s / self.measured_s if self.measured_s > 0 else None

    @property
    def error(self) -> float | None:
        """Signed relative error ``predicted / measured - 1`` (+0.10 = 10% too slow a prediction)."""
        ratio = self.ratio
        return None if ratio is None else ratio - 1.0


@frozen(kw_only=True)
class StageComparison:
    """All rows for one measurement; ``rows`` follow :data:`COMPARED_STAGES` (``tpot`` only with decode steps)."""

    run_id: str = field(metadata={"help": "the measurement's run id"})
    rows: tuple[StageRatio, ...] = field(metadata={"help": "one row per compared stage"})

    def get(self, stage: str) -> StageRatio | None:
        return next((row for row in self.rows if row.stage == stage), None)

    def ratios(self) -> dict[str, float | None]:
        """``stage -> predicted/measured`` (the report's per-stage ratios)."""
        return {row.stage: row.ratio for row in self.rows}

    @property
    def measured_total_time_ms(self) -> float:
        """Measured end-to-end time in ms (the summary contract's unit)."""
        row = self.get("end_to_end")
        assert row is not None
        return row.measured_s * 1e3

    @property
    def predicted_vs_measured_ratio(self) -> float | None:
        """End-to-end ``predicted / measured`` (the summary contract's field)."""
        row = self.get("end_to_end")
        assert row is not None
        return row.ratio


def compare(prediction_stage_times: Mapping[str, float], measurement: Measurement) -> StageComparison:
    """Compare predicted stage seconds with a measurement's medians.

    TPOT: predicted ``decode / (max_new_tokens - 1)`` against the mean of the measured per-step medians.
    TTFT: ``vision + projector + prefill``.  End to end: TTFT plus all decode steps plus ``other``.
    """
    unknown = set(prediction_stage_times) - set(PREDICTED_STAGES)
    missing = {"vision", "projector", "prefill"} - set(prediction_stage_times)
    if unknown or missing:
        raise ValueError(
            f"prediction must map {', '.join(PREDICTED_STAGES)} to seconds; "
            f"unknown {sorted(unknown)}, missing {sorted(missing)}"
        )
    pred = {stage: float(prediction_stage_times.get(stage, 0.0)) for stage in PREDICTED_STAGES}
    got = measurement.timings()
    steps = len(got.decode_steps_s)
    if steps == 0 and pred["decode"] > 0:
        raise ValueError("the prediction has decode time but the measurement has no decode steps")
    ttft = pred["vision"] + pred["projector"] + pred["prefill"]
    rows = [
        StageRatio(stage="vision", predicted_s=pred["vision"], measured_s=got.vision_s),
        StageRatio(stage="projector", predicted_s=pred["projector"], measured_s=got.projector_s),
        StageRatio(stage="prefill", predicted_s=pred["prefill"], measured_s=got.prefill_s),
        StageRatio(stage="ttft", predicted_s=ttft, measured_s=got.ttft_s),
    ]
    if got.tpot_s is not None:
        rows.append(StageRatio(stage="tpot", predicted_s=pred["decode"] / steps, measured_s=got.tpot_s))
    total = ttft + pred["decode"] + pred["other"]
    rows.append(StageRatio(stage="end_to_end", predicted_s=total, measured_s=got.end_to_end_s))
    return StageComparison(run_id=measurement.run_id, rows=tuple(rows))


@frozen(kw_only=True)
class MemoryRow:
    """Peak bytes of one stage above the resident weights, predicted and measured."""

    stage: str = field(metadata={"help": "vision, projector, prefill or decode"})
    predicted_peak_bytes: int = field(metadata={"help": "traced live-activation peak + KV cache at its final length"})
    measured_peak_bytes: int = field(metadata={"help": "the measurement's peak for the stage"})

    @property
    def rel_error(self) -> float | None:
        """``predicted / measured - 1``; None when nothing was measured."""
        m = self.measured_peak_bytes
        return self.predicted_peak_bytes / m - 1.0 if m > 0 else None


def compare_memory(predicted_peaks: Mapping[str, int], measurement: Measurement) -> tuple[MemoryRow, ...]:
    """One row per stage the measurement has a peak for (none for a measurement without memory).

    A recorded stage the prediction lacks is a :class:`ValueError` (the two describe different runs).
    """
    if measurement.memory is None:
        return ()
    rows = []
    for peak in measurement.memory.stages:
        if peak.stage not in predicted_peaks:
            raise ValueError(f"no predicted peak for stage {peak.stage!r} of measurement {measurement.run_id}")
        rows.append(
            MemoryRow(
                stage=peak.stage,
                predicted_peak_bytes=int(predicted_peaks[peak.stage]),
                measured_peak_bytes=peak.peak_bytes,
            )
        )
    return tuple(rows)


def memory_rows_payload(rows: tuple[MemoryRow, ...]) -> list[dict[str, Any]]:
    """``validation.json`` -> ``memory``: ``{stage, predicted_peak_bytes, measured_peak_bytes, rel_error}``."""
    return [
        {
            "stage": r.stage,
            "predicted_peak_bytes": r.predicted_peak_bytes,
            "measured_peak_bytes": r.measured_peak_bytes,
            "rel_error": None if r.rel_error is None else round(r.rel_error, 6),
        }
        for r in rows
    ]


def check_compatible(
    measurement: Measurement,
    *,
    model: str,
    workload: Any,
    workload_id: str | None = None,
    device_id: str | None = None,
    dtype: str | None = None,
) -> None:
    """Refuse a measurement taken for another model variant or another workload (one-line :class:`MeasurementError`).

    ``workload`` is a resolved ``llm_perf_opt.workloads.Workload`` (or a :class:`WorkloadRecord`); workloads are the
    same when mode, crop grid, prefill length, ``max_new_tokens`` and batch size agree (page pixels that give the same
    grid cost the same).  When ``device_id`` (hardware catalog id) or ``dtype`` is given, the measurement must have
    run there too (a CPU run matches only ``device_id="cpu"``).
    """
    wanted = (
        workload
        if isinstance(workload, WorkloadRecord)
        else WorkloadRecord.from_workload(workload, workload_id=workload_id)
    )
    got = measurement.workload
    if measurement.model == model and got.cost_key() == wanted.cost_key():
        _check_device(measurement, device_id=device_id, dtype=dtype)
        return
    raise MeasurementError(
        f"measurement {measurement.run_id} was taken for model {measurement.model} / workload {got.describe()}, "
        f"but the report is for {model} / {wanted.describe()}; re-run measure with {rerun_flags(model, wanted)}"
    )


def mismatches(
    measurement: Measurement,
    *,
    model: str,
    workload: Any,
    workload_id: str | None,
    device_id: str,
    dtype: str,
    attention: str,
    device_type: str = "cuda",
    routing: str = "balanced",
) -> tuple[str, ...]:
    """Every way ``measurement`` differs from the prediction it is compared with, one ``what: measured X,
    predicted Y`` string each (empty: they match).  Checked: model, workload (cost key), device (catalog id;
    ``cpu`` for a CPU run), dtype, attention (the prediction's ``flash`` is the measurement's ``sdpa``) and device
    type (torch's ``cuda`` or ``cpu``, recorded as the measurement's ``device.runtime``; every catalog prediction is a
    CUDA GPU).  "Runtime" in this tool names the inference runtime (hf-eager, vllm, ...), so the text says device
    type.  Routing: a measurement routes by its random weights' own gate (near balanced) or by the balanced slices, so
    it compares with a ``balanced`` prediction only; any other ``routing`` (skewed, a histogram) is a mismatch."""
    wanted = (
        workload
        if isinstance(workload, WorkloadRecord)
        else WorkloadRecord.from_workload(workload, workload_id=workload_id)
    )
    ran_on = "cpu" if measurement.device.runtime == "cpu" else (measurement.device.device_id or measurement.device.name)
    measured_attention = "flash" if measurement.attention == "sdpa" else measurement.attention
    same_workload = measurement.workload.cost_key() == wanted.cost_key()  # pixels giving the same grid cost the same
    pairs = (
        ("model", measurement.model, model),
        (
            "workload",
            measurement.workload.describe(),
            measurement.workload.describe() if same_workload else wanted.describe(),
        ),
        ("device", ran_on, device_id),
        ("dtype", normalize_dtype(measurement.dtype), normalize_dtype(dtype)),
        ("attention", measured_attention, attention),
        ("device type", measurement.device.runtime, device_type),
        ("routing", measurement.routing, measurement.routing if routing == "balanced" else routing),
    )
    return tuple(f"{what}: measured {got}, predicted {want}" for what, got, want in pairs if got != want)


def _check_device(measurement: Measurement, *, device_id: str | None, dtype: str | None) -> None:
    ran_on = "cpu" if measurement.device.runtime == "cpu" else (measurement.device.device_id or measurement.device.name)
    ran_dtype = normalize_dtype(measurement.dtype)
    wanted_dtype = None if dtype is None else normalize_dtype(dtype)
    if (device_id is None or device_id == ran_on) and (wanted_dtype is None or wanted_dtype == ran_dtype):
        return
    raise MeasurementError(
        f"measurement {measurement.run_id} ran on {ran_on} in {ran_dtype}, but the report is for "
        f"{device_id or ran_on} in {wanted_dtype or ran_dtype}; use a measurement taken on "
        f"{device_id or ran_on} in {wanted_dtype or ran_dtype} (llm-perf-opt measure --runtime-device cuda ...)"
    )


def rerun_flags(model: str, workload: WorkloadRecord) -> str:
    """The ``llm-perf-opt measure`` flags that reproduce ``workload`` for ``model``."""
    head = f"--model {model}"
    if workload.workload_id:
        return f"{head} --workload {workload.workload_id}"
    return (
        f"{head} --mode {workload.mode} --page {workload.page_width}x{workload.page_height} "
        f"--prompt-tokens {workload.prompt_tokens} --max-new-tokens {workload.max_new_tokens} "
        f"--batch {workload.batch_size}"
    )
