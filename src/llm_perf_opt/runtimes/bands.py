"""How far a predicted time can be trusted, per runtime: the error bands the validation pages show.

:data:`ERROR_BANDS` quotes docs/validation-runtimes.md (published measurements, ``llm-perf-opt
validation-runtimes-doc``) and docs/validation.md (the H100 measurements of the built-in model, ``llm-perf-opt
validation-doc``); tests/runtimes check the quoted published-point bands against a fresh validation, so the text
cannot drift from the pages.  Every report and summary note carries :func:`trust_line` (several devices at once:
:func:`trust_lines`).  A band holds on the devices it was measured on (:data:`MEASURED_ON`) and for the models it was
measured with (:data:`MEASURED_MODELS`: the H100 runs are of DeepSeek-OCR v1); on any other device or model the line
says so and quotes the nearest measured reference, never a profile that only that reference device accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "ERROR_BANDS",
    "MEASURED_MODELS",
    "MEASURED_ON",
    "MODEL_NAMES",
    "NEAREST_REFERENCE",
    "by_device",
    "model_family",
    "not_validated",
    "trust_line",
    "trust_lines",
]

_H100 = (
    "docs/validation.md, H100 bf16: uncalibrated 11-38% too fast on TTFT and 34-54% on TPOT; with an H100 profile "
    "fitted on the committed measurements (--device-profile h100-sxm-hf-eager-gate / -balanced) within +-19% "
    "leave-one-out"
)

ERROR_BANDS: Mapping[str, str] = {
    "hf-eager": _H100,
    "hf-flash": _H100 + " (the sdpa measurements run fused attention as flash does)",
    "hf-cuda-graph": (
        "not validated against a published single-request measurement (docs/validation-runtimes.md); no GPU run "
        "of HF static cache + CUDA graphs is committed yet (benchmarks/gpu_cuda_graph.py measures one at batch 1, "
        "8 and 32)"
    ),
    "vllm": (
        "not validated against a published single-request measurement (docs/validation-runtimes.md); serving "
        "points whose conditions are not stated come out above the published throughput, simulated: A100-40G "
        "2.3-2.4x, A10 DeepSeek-OCR-2 pages (vision + prefill) 1.6x, H100 pages/s (derived from LightOn's claim) 4.5x: "
        "an upper bound"
    ),
    "sglang": (
        "+-19% on 2 published single-request holdout(s) (docs/validation-runtimes.md: MI300X TPOT, H200 OCR-2 TTFT; "
        "three host constants are fitted on the other three SGLang points)"
    ),
}
"""Per runtime: the expected error of TTFT/TPOT, in words, with the page it comes from."""


MEASURED_ON: Mapping[str, frozenset[str]] = {
    "hf-eager": frozenset({"h100-sxm"}),
    "hf-flash": frozenset({"h100-sxm"}),
    "sglang": frozenset({"h200", "mi300x"}),
}
"""Per runtime whose band is measured: the catalog devices of those measurements (benchmarks/measurements for hf-*,
the published single-request points for SGLang).  Runtimes left out have no measured band on any device."""

MODEL_NAMES: Mapping[str, str] = {"deepseek-ocr-v1": "DeepSeek-OCR v1", "deepseek-ocr-2": "DeepSeek-OCR-2"}
"""The model families a band can be measured with, by :func:`model_family` key."""

MEASURED_MODELS: Mapping[str, frozenset[str]] = {
    "hf-eager": frozenset({"deepseek-ocr-v1"}),
    "hf-flash": frozenset({"deepseek-ocr-v1"}),
    "sglang": frozenset({"deepseek-ocr-v1", "deepseek-ocr-2"}),
}
"""Per runtime of :data:`MEASURED_ON`: the model families of its measurements (the H100 files run the built-in
DeepSeek-OCR v1; SGLang's holdouts are a DeepSeek-OCR point on MI300X and a DeepSeek-OCR-2 point on H200)."""


def model_family(model: str) -> str:
    """``deepseek-ocr-2`` for DeepSeek-OCR-2, ``deepseek-ocr-v1`` for every other model source (the built-in v1
    variants, v1 snapshots and Hub revisions)."""
    return "deepseek-ocr-2" if model == "deepseek-ocr-2" else "deepseek-ocr-v1"


_H100_REFERENCE = "H100 bf16 (docs/validation.md): uncalibrated 11-38% too fast on TTFT and 34-54% on TPOT"

NEAREST_REFERENCE: Mapping[str, str] = {
    "hf-eager": _H100_REFERENCE,
    "hf-flash": _H100_REFERENCE,
    "sglang": "H200 and MI300X (docs/validation-runtimes.md): +-19% on 2 published single-request holdouts",
}
"""Per runtime of :data:`MEASURED_ON`: its band as quoted on other devices (no device-specific profile in it)."""


def not_validated(reference: str, *, other_device: bool, other_model: str | None) -> str:
    """The band where the measurements do not reach: on another device and/or for another model family
    (``other_model``, a :data:`MODEL_NAMES` key), quoting the nearest measured ``reference``."""
    if other_model is None:
        return f"not validated on this device (no measurements); the nearest measured reference is {reference}"
    where = " nor on this device (no measurements of either)" if other_device else " (no measurements of it)"
    return f"not validated for {MODEL_NAMES[other_model]}{where}; the nearest measured reference is {reference}"


def _band(runtime_id: str, device_id: str, model: str) -> str:
    measured = MEASURED_ON.get(runtime_id)
    if measured is None:
        return ERROR_BANDS.get(runtime_id, "not validated")
    family, other_device = model_family(model), device_id not in measured
    if family in MEASURED_MODELS[runtime_id]:
        if not other_device:
            return ERROR_BANDS[runtime_id]
        return not_validated(NEAREST_REFERENCE[runtime_id], other_device=True, other_model=None)
    of = " and ".join(MODEL_NAMES[f] for f in sorted(MEASURED_MODELS[runtime_id], key=list(MODEL_NAMES).index))
    return not_validated(f"{of} on {NEAREST_REFERENCE[runtime_id]}", other_device=other_device, other_model=family)


def trust_line(runtime_id: str, *, calibrated: bool, device_id: str, model: str) -> str:
    """One line for reports: the expected error band of ``runtime_id`` on ``device_id`` (catalog id) for ``model``
    (a model source name), and whether the hf-* time profile was calibrated on this device."""
    suffix = "" if calibrated or not runtime_id.startswith("hf-") else "; this run is uncalibrated"
    return f"expected error: {_band(runtime_id, device_id, model)}{suffix}"


def by_device(line_of: Callable[[str], str], device_ids: Iterable[str]) -> str:
    """Several devices' lines as one: the line alone when every device gets it, else each distinct line after the
    devices that get it (``h100-sxm: ...; l4, t4: ...``), in first-seen order."""
    groups: dict[str, list[str]] = {}
    for device_id in device_ids:
        groups.setdefault(line_of(device_id), []).append(device_id)
    if len(groups) == 1:
        return next(iter(groups))
    return ". ".join(f"{', '.join(ids)}: {line}" for line, ids in groups.items())


def trust_lines(runtime_id: str, *, device_ids: Iterable[str], profile_device: str | None, model: str) -> str:
    """:func:`trust_line` for several devices timed with one profile, calibrated on ``profile_device`` (None: on
    none of them)."""
    return by_device(
        lambda d: trust_line(runtime_id, calibrated=d == profile_device, device_id=d, model=model),
        device_ids,
    )
