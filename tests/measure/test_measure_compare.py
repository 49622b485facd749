"""Predicted/measured ratios and the refusal of a measurement for another model or workload."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.compare import COMPARED_STAGES, check_compatible, compare
from llm_perf_opt.measure.record import Measurement
from llm_perf_opt.workloads import Workload, preset_workload

Factory = Callable[..., Measurement]

# measured medians of the factory measurement: vision 11 ms, projector 2 ms, prefill 5 ms, steps (2, 2, 4) ms
PREDICTION = {"vision": 0.022, "projector": 0.001, "prefill": 0.005, "decode": 0.004}


def test_ratios_per_stage(measurement_factory: Factory) -> None:
    result = compare(PREDICTION, measurement_factory())
    assert [row.stage for row in result.rows] == list(COMPARED_STAGES)
    ratios = result.ratios()
    assert ratios["vision"] == pytest.approx(0.022 / 0.011)  # 2.0: predicted twice too slow
    assert ratios["projector"] == pytest.approx(0.001 / 0.002)  # 0.5
    assert ratios["prefill"] == pytest.approx(1.0)
    assert ratios["ttft"] == pytest.approx((0.022 + 0.001 + 0.005) / (0.011 + 0.002 + 0.005))
    assert ratios["tpot"] == pytest.approx((0.004 / 3) / ((0.002 + 0.002 + 0.004) / 3))  # 0.5
    assert ratios["end_to_end"] == pytest.approx((0.028 + 0.004) / (0.018 + 0.008))
    assert result.get("vision").error == pytest.approx(1.0)  # type: ignore[union-attr]
    assert result.measured_total_time_ms == pytest.approx(26.0)
    assert result.predicted_vs_measured_ratio == pytest.approx(32 / 26)


def test_other_stage_counts_in_end_to_end_only(measurement_factory: Factory) -> None:
    result = compare({**PREDICTION, "other": 0.002}, measurement_factory())
    assert result.get("ttft").predicted_s == pytest.approx(0.028)  # type: ignore[union-attr]
    assert result.get("end_to_end").predicted_s == pytest.approx(0.028 + 0.004 + 0.002)  # type: ignore[union-attr]


def test_prediction_keys_are_checked(measurement_factory: Factory) -> None:
    with pytest.raises(ValueError, match="missing \\['prefill'\\]"):
        compare({"vision": 1.0, "projector": 1.0}, measurement_factory())
    with pytest.raises(ValueError, match="unknown \\['ttft'\\]"):
        compare({**PREDICTION, "ttft": 1.0}, measurement_factory())


def test_same_model_and_workload_is_accepted(measurement_factory: Factory) -> None:
    # a different page that resolves to the same tiny-mode single view costs the same
    check_compatible(
        measurement_factory(),
        model="deepseek-ocr-v1-tiny",
        workload=Workload.create(mode="tiny", page=(400, 300), max_new_tokens=4),
    )


def test_other_model_is_refused_with_a_rerun_hint(measurement_factory: Factory) -> None:
    with pytest.raises(UserError) as info:
        check_compatible(
            measurement_factory(),
            model="deepseek-ocr-v1-base",
            workload=Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4),
        )
    message = str(info.value)
    assert "\n" not in message
    assert "measurement meas-test-1 was taken for model deepseek-ocr-v1-tiny" in message
    assert "but the report is for deepseek-ocr-v1-base" in message
    assert "re-run measure with --model deepseek-ocr-v1-base --mode tiny --page 512x512" in message


def test_other_workload_is_refused(measurement_factory: Factory) -> None:
    with pytest.raises(UserError) as info:
        check_compatible(
            measurement_factory(), model="deepseek-ocr-v1-tiny", workload=preset_workload("dsocr-standard-v1")
        )
    message = str(info.value)
    assert "S=83, 4 new tokens" in message  # 1 + 73 + 9
    assert "dsocr-standard-v1 (gundam, 2x2 crops, S=703, 512 new tokens, batch 1)" in message
    assert message.endswith("re-run measure with --model deepseek-ocr-v1-tiny --workload dsocr-standard-v1")


@pytest.mark.parametrize("change", [{"max_new_tokens": 5}, {"batch_size": 2}, {"prompt_tokens": 10}])
def test_any_cost_changing_field_is_refused(measurement_factory: Factory, change: dict[str, int]) -> None:
    kwargs: dict[str, int] = {"max_new_tokens": 4, **change}
    with pytest.raises(UserError, match="was taken for model"):
        check_compatible(
            measurement_factory(),
            model="deepseek-ocr-v1-tiny",
            workload=Workload.create(mode="tiny", page=(512, 512), **kwargs),  # type: ignore[arg-type]
        )


def test_device_and_dtype_are_checked_when_given(measurement_factory: Factory) -> None:
    m = measurement_factory()
    same = {
        "model": "deepseek-ocr-v1-tiny",
        "workload": Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4),
    }
    check_compatible(m, **same, device_id="cpu", dtype="float32")  # type: ignore[arg-type]
    with pytest.raises(UserError) as info:
        check_compatible(m, **same, device_id="h100-sxm", dtype="bf16")  # type: ignore[arg-type]
    assert str(info.value) == (
        "measurement meas-test-1 ran on cpu in fp32, but the report is for h100-sxm in bf16; "
        "use a measurement taken on h100-sxm in bf16 (llm-perf-opt measure --runtime-device cuda ...)"
    )


def test_mismatches_name_every_difference(measurement_factory: Factory) -> None:
    """A CPU fp32 eager run against an H100 bf16 flash prediction: four differences, each named (issue 17)."""
    from llm_perf_opt.measure.compare import mismatches

    m = measurement_factory()
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4)
    found = mismatches(
        m,
        model="deepseek-ocr-v1-tiny",
        workload=workload,
        workload_id=None,
        device_id="h100-sxm",
        dtype="bf16",
        attention="flash",
    )
    assert found == (
        "device: measured cpu, predicted h100-sxm",
        "dtype: measured fp32, predicted bf16",
        "attention: measured eager, predicted flash",
        "device type: measured cpu, predicted cuda",  # torch device type, not an inference runtime
    )
    same = mismatches(
        m,
        model="deepseek-ocr-v1-tiny",
        workload=workload,
        workload_id=None,
        device_id="cpu",
        dtype="fp32",
        attention="eager",
        device_type="cpu",
    )
    assert same == ()
    other = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=8)
    (row,) = mismatches(
        m,
        model="deepseek-ocr-v1-tiny",
        workload=other,
        workload_id=None,
        device_id="cpu",
        dtype="fp32",
        attention="eager",
        device_type="cpu",
    )
    assert row.startswith("workload: measured ")


def test_routing_other_than_balanced_is_a_mismatch(measurement_factory: Factory) -> None:
    """A measurement routes by its random weights' gate (near balanced): it compares with a balanced prediction only."""
    from llm_perf_opt.measure.compare import mismatches

    m = measurement_factory()
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4)
    same = {
        "model": "deepseek-ocr-v1-tiny",
        "workload": workload,
        "workload_id": None,
        "device_id": "cpu",
        "dtype": "fp32",
    }
    assert mismatches(m, **same, attention="eager", device_type="cpu", routing="balanced") == ()
    found = mismatches(m, **same, attention="eager", device_type="cpu", routing="skewed:4")
    assert found == (f"routing: measured {m.routing}, predicted skewed:4",)
