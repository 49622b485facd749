"""The measurement file: medians, derived stage times, JSON round trip, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from attrs import evolve

from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.record import (
    Measurement,
    MeasurementError,
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
    assert payload["schema_version"] == 1
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
        ('{"schema_version": 99}', "schema_version 99, expected 1"),
        ('{"schema_version": 1, "run_id": "x"}', "does not match the measurement schema"),
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
