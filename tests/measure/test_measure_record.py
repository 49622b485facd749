"""The measurement file: medians, derived stage times, JSON round trip, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from attrs import evolve

from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.record import (
    MEMORY_STAGES,
    Measurement,
    MeasurementError,
    MemoryRecord,
    StageMemory,
    dumps_measurement,
    load_measurement,
    loads_measurement,
    save_measurement,
)

Factory = Callable[..., Measurement]


def test_timings_are_medians_stage_by_stage_and_step_by_step(measurement_factory: Factory) -> None:
    t = measurement_factory().timings()
    assert t.vision_s == pytest.approx(0.011)  # median(0.010, 0.012, 0.011)
    assert t.projector_s == pytest.approx(0.002)
    assert t.prefill_s == pytest.approx(0.005)
    assert t.decode_steps_s == pytest.approx((0.002, 0.002, 0.004))  # per step: (2,2,3) (3,2,2) (4,2,9) ms
    assert t.ttft_s == pytest.approx(0.011 + 0.002 + 0.005)
    assert t.tpot_s == pytest.approx((0.002 + 0.002 + 0.004) / 3)
    assert t.end_to_end_s == pytest.approx(0.018 + 0.008)


def test_min_statistic_takes_the_fastest_repeat(measurement_factory: Factory) -> None:
    t = measurement_factory(statistic="min").timings()
    assert (t.vision_s, t.projector_s, t.prefill_s) == pytest.approx((0.010, 0.001, 0.004))
    assert t.decode_steps_s == pytest.approx((0.002, 0.002, 0.002))  # per step: min(2,2,3) min(3,2,2) min(4,2,9) ms


def test_json_round_trip_is_exact(measurement_factory: Factory, tmp_path: Path) -> None:
    m = measurement_factory()
    path = tmp_path / "m.json"
    save_measurement(m, path)
    assert load_measurement(path) == m
    assert path.read_text(encoding="utf-8") == dumps_measurement(m)
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["schema_version"] == 2
    assert payload["workload"]["seq_len"] == 1 + 73 + 9  # BOS + tiny-mode image tokens + prompt


def test_run_must_time_every_decode_step(measurement_factory: Factory) -> None:
    m = measurement_factory()
    short = evolve(m.runs[0], decode_steps_s=(0.001,))
    with pytest.raises(ValueError, match="3 decode steps"):
        evolve(m, runs=(short,))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"schema_version": 99}', "schema_version 99, expected one of 1, 2"),
        ('{"schema_version": 1, "run_id": "x"}', "does not match the measurement schema"),
        ('{"a": 1}', "m.json is not a measurement: it has no schema_version or run_id; pass a file written by"),
        # likely mix-ups say what the file is instead: a report file, a device profile (YAML)
        ('{"report_id": "dsocr-1", "predicted_total_time_ms": 1}', "looks like a report file: compare reports with"),
        ("source: x\nmemory_efficiency: 0.8\nkernel_overhead_s: 1.0e-05\n", "looks like a device profile: pass it"),
    ],
)
def test_bad_files_are_one_line_user_errors(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        loads_measurement(text, source="m.json")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="cannot read measurement"):
        load_measurement(tmp_path / "absent.json")


def test_extra_keys_are_refused(measurement_factory: Factory) -> None:
    payload = json.loads(dumps_measurement(measurement_factory()))
    payload["surprise"] = 1
    with pytest.raises(MeasurementError, match="surprise"):
        loads_measurement(json.dumps(payload))


def _with_memory(m: Measurement) -> Measurement:
    stages = tuple(
        StageMemory(stage=s, peak_bytes=1000 * (i + 1), reserved_bytes=None) for i, s in enumerate(MEMORY_STAGES)
    )
    return evolve(m, memory=MemoryRecord(method="live-bytes", weights_bytes=10_000, kv_cache_bytes=500, stages=stages))


def test_memory_round_trips_and_is_found_by_stage(measurement_factory: Factory) -> None:
    m = _with_memory(measurement_factory())
    again = loads_measurement(dumps_measurement(m))
    assert again == m
    assert again.memory is not None
    peak = again.memory.peak("prefill")
    assert peak is not None and peak.peak_bytes == 3000
    assert again.memory.peak("other") is None


def test_a_schema_1_file_is_read_as_schema_2_without_memory(measurement_factory: Factory) -> None:
    m = measurement_factory()
    payload = json.loads(dumps_measurement(m))
    del payload["memory"]
    payload["schema_version"] = 1  # the layout before memory was recorded
    old = loads_measurement(json.dumps(payload))
    assert old == m
    assert old.schema_version == 2
    assert old.memory is None
    # a malformed memory entry is refused like any other mismatch
    payload["memory"] = {"method": "live-bytes"}
    with pytest.raises(MeasurementError, match="does not match"):
        loads_measurement(json.dumps(payload))


def test_the_committed_schema_1_gpu_files_still_load() -> None:
    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "measurements"
    old = [p for p in sorted(folder.glob("*.json")) if json.loads(p.read_text())["schema_version"] == 1]
    assert old, "expected schema 1 files among the committed measurements"
    for path in old:
        assert load_measurement(path).memory is None


def test_negative_peaks_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        StageMemory(stage="vision", peak_bytes=-1)
