"""How far a predicted time can be trusted, per runtime: the error bands the validation pages show.

:data:`ERROR_BANDS` quotes docs/validation-runtimes.md (published measurements, ``llm-perf-opt
validation-runtimes-doc``) and docs/validation.md (the H100 measurements of the built-in model, ``llm-perf-opt
validation-doc``); tests/runtimes check the quoted published-point bands against a fresh validation, so the text
cannot drift from the pages.  Every report and summary note carries :func:`trust_line`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ERROR_BANDS", "trust_line"]

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


def trust_line(runtime_id: str, *, calibrated: bool) -> str:
    """One line for reports: the expected error band of ``runtime_id`` (and that a profile calibrated on this device
    is what the hf-* bands assume after calibration)."""
    band = ERROR_BANDS.get(runtime_id, "not validated")
    suffix = "" if calibrated or not runtime_id.startswith("hf-") else "; this run is uncalibrated"
    return f"expected error: {band}{suffix}"
