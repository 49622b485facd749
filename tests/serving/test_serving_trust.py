"""The serving trust line per device: a published serving point's error only on the device it was published for."""

from __future__ import annotations

from llm_perf_opt.runtimes.bands import model_family
from llm_perf_opt.runtimes.published import load_published
from llm_perf_opt.serving.trust import (
    SERVING_ERROR_BANDS,
    SERVING_MEASURED_MODELS,
    SERVING_MEASURED_ON,
    trust_line,
    trust_lines,
)

V1 = "deepseek-ocr-v1-base"
NOT_HERE = "not validated on this device (no measurements); the nearest measured reference is "


def test_measured_devices_are_those_of_the_quoted_serving_points() -> None:
    points = [p for s in load_published() for p in s.points if p.kind == "serving" and p.conditions_stated]
    assert SERVING_MEASURED_ON["sglang"] == {p.device for p in points if p.runtime == "sglang"}
    assert "A100-40G" in SERVING_ERROR_BANDS["vllm"] and SERVING_MEASURED_ON["vllm"] == {"a100-40gb"}


def test_band_on_its_device_and_nearest_reference_elsewhere() -> None:
    assert NOT_HERE not in trust_line("vllm", device_id="a100-40gb", model="deepseek-ocr-v1-base")
    assert SERVING_ERROR_BANDS["vllm"] in trust_line("vllm", device_id="a100-40gb", model="deepseek-ocr-v1-base")
    on_l4 = trust_line("vllm", device_id="l4", model="deepseek-ocr-v1-base")
    assert f"{NOT_HERE}{SERVING_ERROR_BANDS['vllm']}" in on_l4
    assert NOT_HERE not in trust_line("sglang", device_id="h200", model="deepseek-ocr-v1-base")
    assert NOT_HERE in trust_line("sglang", device_id="h100-sxm", model="deepseek-ocr-v1-base")
    assert trust_line("vllm", device_id=None, model="deepseek-ocr-v1-base") == trust_line(
        "vllm", device_id="a100-40gb", model="deepseek-ocr-v1-base"
    )
    assert "not validated against a published serving measurement" in trust_line(
        "hf-eager", device_id="h100-sxm", model="deepseek-ocr-v1-base"
    )


def test_a_plan_over_several_devices_names_each_line() -> None:
    line = trust_lines("vllm", device_ids=["a100-40gb", "l4"], model=V1)
    a100, l4 = trust_line("vllm", device_id="a100-40gb", model=V1), trust_line("vllm", device_id="l4", model=V1)
    assert line == f"a100-40gb: {a100}. l4: {l4}"


def test_a_model_without_published_points_is_not_validated_for_it() -> None:
    points = [p for s in load_published() for p in s.points if p.kind == "serving" and p.conditions_stated]
    for runtime in SERVING_MEASURED_MODELS:
        quoted = {model_family(p.model) for p in points if p.runtime == runtime}
        if runtime == "vllm":  # its quoted points are the README's and the paper's (conditions not stated)
            quoted = {model_family(p.model) for s in load_published() for p in s.points if p.point_id in QUOTED}
        assert SERVING_MEASURED_MODELS[runtime] == quoted, runtime
    ocr2 = trust_line("vllm", device_id="a100-40gb", model="deepseek-ocr-2")
    assert ocr2.startswith(
        "expected error (docs/validation-runtimes.md): not validated for DeepSeek-OCR-2 (no measurements of it); the "
        f"nearest measured reference is {SERVING_ERROR_BANDS['vllm']}"
    )
    assert "nor on this device" in trust_line("vllm", device_id="l4", model="deepseek-ocr-2")
    assert NOT_HERE not in trust_line("sglang", device_id="h200", model="deepseek-ocr-2")  # its H200 point is OCR-2


QUOTED = ("readme-a100-pdf-output-tps", "paper-a100-pages-per-day")
