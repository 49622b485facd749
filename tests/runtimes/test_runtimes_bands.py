"""The trust line per runtime and device: a measured band on the devices it was measured on, and elsewhere a plain
'not validated on this device' with the nearest reference, never a profile that only the reference device accepts."""

from __future__ import annotations

import pytest

from llm_perf_opt.hardware import device_ids, get_device
from llm_perf_opt.perf import load_device_profile
from llm_perf_opt.perf.named_profiles import resolve_profile_path
from llm_perf_opt.runtimes.bands import (
    ERROR_BANDS,
    MEASURED_MODELS,
    MEASURED_ON,
    NEAREST_REFERENCE,
    model_family,
    trust_line,
    trust_lines,
)
from llm_perf_opt.runtimes.published import load_published

PROFILE = "--device-profile h100-sxm-hf-eager-gate"


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-flash"])
def test_h100_keeps_its_measured_band_and_the_profile_it_accepts(runtime: str) -> None:
    line = trust_line(runtime, calibrated=False, device_id="h100-sxm", model="deepseek-ocr-v1-base")
    assert line.startswith(f"expected error: {ERROR_BANDS[runtime]}") and PROFILE in line
    assert line.endswith("; this run is uncalibrated")
    assert "not validated" not in line
    # the suggested profile is accepted on this device: it was fitted on it
    assert load_device_profile(resolve_profile_path("h100-sxm-hf-eager-gate")).device_id == "h100-sxm"


@pytest.mark.parametrize("device", ["l4", "t4", "a100-80gb", "a100-40gb", "h200", "h100-pcie", "mi300x"])
@pytest.mark.parametrize("runtime", ["hf-eager", "hf-flash"])
def test_other_devices_are_not_validated_and_get_no_h100_profile(runtime: str, device: str) -> None:
    line = trust_line(runtime, calibrated=False, device_id=device, model="deepseek-ocr-v1-base")
    assert line.startswith("expected error: not validated on this device (no measurements); the nearest measured")
    assert "reference is H100 bf16 (docs/validation.md): uncalibrated 11-38% too fast on TTFT" in line
    assert "--device-profile" not in line and "h100-sxm-hf-eager" not in line and "+-19%" not in line
    assert line.endswith("; this run is uncalibrated")


def test_sglang_band_holds_on_its_published_devices_only() -> None:
    published = {
        p.device
        for s in load_published()
        for p in s.points
        if p.runtime == "sglang" and p.kind == "single-request" and p.role == "holdout"
    }
    assert MEASURED_ON["sglang"] == published  # the devices the +-19% holdouts were measured on
    for device in published:
        assert (
            trust_line("sglang", calibrated=False, device_id=device, model="deepseek-ocr-v1-base")
            == f"expected error: {ERROR_BANDS['sglang']}"
        )
    line = trust_line("sglang", calibrated=False, device_id="l4", model="deepseek-ocr-v1-base")
    assert line == f"expected error: not validated on this device (no measurements); the nearest measured reference " \
        f"is {NEAREST_REFERENCE['sglang']}"  # fmt: skip


@pytest.mark.parametrize("runtime", ["vllm", "hf-cuda-graph"])
def test_runtimes_with_no_measured_band_say_so_on_every_device(runtime: str) -> None:
    lines = {trust_line(runtime, calibrated=True, device_id=d, model="deepseek-ocr-v1-base") for d in device_ids()}
    assert lines == {f"expected error: {ERROR_BANDS[runtime]}"}
    assert "not validated" in ERROR_BANDS[runtime]


def test_every_measured_device_is_a_catalog_device() -> None:
    for runtime, devices in MEASURED_ON.items():
        assert runtime in ERROR_BANDS and runtime in NEAREST_REFERENCE
        for device in devices:
            assert get_device(device).device_id == device


def test_several_devices_name_the_devices_of_each_line() -> None:
    both = trust_lines(
        "hf-eager", device_ids=["h100-sxm", "l4", "t4"], profile_device="h100-sxm", model="deepseek-ocr-v1-base"
    )
    h100 = trust_line("hf-eager", calibrated=True, device_id="h100-sxm", model="deepseek-ocr-v1-base")
    other = trust_line("hf-eager", calibrated=False, device_id="l4", model="deepseek-ocr-v1-base")
    assert both == f"h100-sxm: {h100}. l4, t4: {other}"
    assert not h100.endswith("uncalibrated") and other.endswith("uncalibrated")
    assert trust_lines("hf-eager", device_ids=["l4", "t4"], profile_device=None, model="deepseek-ocr-v1-base") == other


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-flash"])
def test_deepseek_ocr2_is_not_validated_on_the_h100_runs_of_v1(runtime: str) -> None:
    reference = "DeepSeek-OCR v1 on H100 bf16 (docs/validation.md): uncalibrated 11-38% too fast on TTFT"
    on_h100 = trust_line(runtime, calibrated=False, device_id="h100-sxm", model="deepseek-ocr-2")
    assert on_h100.startswith(
        "expected error: not validated for DeepSeek-OCR-2 (no measurements of it); the nearest measured reference is "
        + reference
    )
    elsewhere = trust_line(runtime, calibrated=False, device_id="l4", model="deepseek-ocr-2")
    assert elsewhere.startswith("expected error: not validated for DeepSeek-OCR-2 nor on this device (no measurements")
    for line in (on_h100, elsewhere):  # the v1 profile's +-19% is not offered for another model
        assert "--device-profile" not in line and "+-19%" not in line and line.endswith("; this run is uncalibrated")
    # every v1 source (built-in variants, snapshots, Hub revisions) is measured by the v1 runs
    v1 = trust_line(runtime, calibrated=False, device_id="h100-sxm", model="hf:deepseek-ai/DeepSeek-OCR@main")
    assert v1.startswith(f"expected error: {ERROR_BANDS[runtime]}")


def test_measured_models_are_those_of_the_measurements() -> None:
    holdouts = [p for s in load_published() for p in s.points if p.runtime == "sglang" and p.kind == "single-request"]
    assert MEASURED_MODELS["sglang"] == {model_family(p.model) for p in holdouts if p.role == "holdout"}
    assert set(MEASURED_MODELS) == set(MEASURED_ON)
    for device in MEASURED_ON["sglang"]:  # its holdouts cover both models: the band holds for OCR-2 as for v1
        ocr2 = trust_line("sglang", calibrated=False, device_id=device, model="deepseek-ocr-2")
        assert ocr2 == f"expected error: {ERROR_BANDS['sglang']}"
