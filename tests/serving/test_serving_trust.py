"""The serving trust line per device: a published serving point's error only on the device it was published for."""

from __future__ import annotations

from llm_perf_opt.runtimes.published import load_published
from llm_perf_opt.serving.trust import SERVING_ERROR_BANDS, SERVING_MEASURED_ON, trust_line, trust_lines

NOT_HERE = "not validated on this device (no measurements); the nearest measured reference is "


def test_measured_devices_are_those_of_the_quoted_serving_points() -> None:
    points = [p for s in load_published() for p in s.points if p.kind == "serving" and p.conditions_stated]
    assert SERVING_MEASURED_ON["sglang"] == {p.device for p in points if p.runtime == "sglang"}
    assert "A100-40G" in SERVING_ERROR_BANDS["vllm"] and SERVING_MEASURED_ON["vllm"] == {"a100-40gb"}


def test_band_on_its_device_and_nearest_reference_elsewhere() -> None:
    assert NOT_HERE not in trust_line("vllm", device_id="a100-40gb")
    assert SERVING_ERROR_BANDS["vllm"] in trust_line("vllm", device_id="a100-40gb")
    on_l4 = trust_line("vllm", device_id="l4")
    assert f"{NOT_HERE}{SERVING_ERROR_BANDS['vllm']}" in on_l4
    assert NOT_HERE not in trust_line("sglang", device_id="h200")
    assert NOT_HERE in trust_line("sglang", device_id="h100-sxm")
    assert trust_line("vllm", device_id=None) == trust_line("vllm", device_id="a100-40gb")
    assert "not validated against a published serving measurement" in trust_line("hf-eager", device_id="h100-sxm")


def test_a_plan_over_several_devices_names_each_line() -> None:
    line = trust_lines("vllm", device_ids=["a100-40gb", "l4"])
    assert line == f"a100-40gb: {trust_line('vllm', device_id='a100-40gb')}. l4: {trust_line('vllm', device_id='l4')}"
