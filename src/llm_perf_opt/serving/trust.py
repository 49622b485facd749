"""How far a simulated throughput can be trusted, per runtime: the serving rows of docs/validation-runtimes.md.

tests/serving check every quoted error against a fresh validation of the published serving points, so the text
cannot drift from the page (``llm-perf-opt validation-runtimes-doc``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llm_perf_opt.runtimes.bands import by_device, model_family, not_validated

__all__ = [
    "QUOTED_ERRORS",
    "SERVING_ERROR_BANDS",
    "SERVING_MEASURED_MODELS",
    "SERVING_MEASURED_ON",
    "trust_line",
    "trust_lines",
]

QUOTED_ERRORS: Mapping[str, float] = {
    "readme-a100-pdf-output-tps": 1.273,
    "paper-a100-pages-per-day": 1.372,
    "sglang-mi300x-ocr1-c100-output-tps": 0.001,
    "sglang-h200-ocr2-c100-output-tps": 0.005,
}
"""predicted / published - 1 of each published serving point, as the page shows it (to 0.1%)."""

SERVING_ERROR_BANDS: Mapping[str, str] = {
    "vllm": (
        "throughput +127% and +137% above the 2 published vLLM serving points (A100-40G, DeepSeek-OCR README and "
        "paper; conditions not stated, host-side n-gram logits processor not modelled)"
    ),
    "sglang": (
        "throughput +0% (+0.5%) against the published H200 OCR-2 c=100 point, a holdout; the MI300X c=100 point "
        "(+0%) fits the host time of a prefill iteration that stalls decode"
    ),
}
"""Per runtime: the error of simulated throughput against published serving measurements, in words."""


SERVING_MEASURED_ON: Mapping[str, frozenset[str]] = {
    "vllm": frozenset({"a100-40gb"}),
    "sglang": frozenset({"h200", "mi300x"}),
}
"""Per runtime of :data:`SERVING_ERROR_BANDS`: the catalog devices of the published serving points it quotes."""


SERVING_MEASURED_MODELS: Mapping[str, frozenset[str]] = {
    "vllm": frozenset({"deepseek-ocr-v1"}),
    "sglang": frozenset({"deepseek-ocr-v1", "deepseek-ocr-2"}),
}
"""Per runtime of :data:`SERVING_ERROR_BANDS`: the model families of the published points it quotes (vLLM's are
DeepSeek-OCR's README and paper; SGLang's a DeepSeek-OCR point on MI300X and a DeepSeek-OCR-2 point on H200)."""


def trust_line(runtime: str, *, device_id: str | None, model: str) -> str:
    """One line for outputs: the expected error of a simulated throughput of ``model`` (a model source name) on
    ``runtime`` and ``device_id`` (None: the published points' own devices, as the validation simulates them)."""
    band = SERVING_ERROR_BANDS.get(runtime, "not validated against a published serving measurement")
    if runtime in SERVING_ERROR_BANDS:
        family = model_family(model)
        other_device = device_id is not None and device_id not in SERVING_MEASURED_ON[runtime]
        other_model = None if family in SERVING_MEASURED_MODELS[runtime] else family
        if other_device or other_model is not None:
            band = not_validated(band, other_device=other_device, other_model=other_model)
    return f"expected error (docs/validation-runtimes.md): {band}; latencies are not validated under load"


def trust_lines(runtime: str, *, device_ids: Iterable[str], model: str) -> str:
    """:func:`trust_line` for several devices."""
    return by_device(lambda d: trust_line(runtime, device_id=d, model=model), device_ids)
