"""How far a simulated throughput can be trusted, per runtime: the serving rows of docs/validation-runtimes.md.

tests/serving check every quoted error against a fresh validation of the published serving points, so the text
cannot drift from the page (``llm-perf-opt validation-runtimes-doc``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["QUOTED_ERRORS", "SERVING_ERROR_BANDS", "trust_line"]

QUOTED_ERRORS: Mapping[str, float] = {
    "readme-a100-pdf-output-tps": 1.273,
    "paper-a100-pages-per-day": 1.372,
    "sglang-mi300x-ocr1-c100-output-tps": 0.709,
    "sglang-h200-ocr2-c100-output-tps": 0.638,
}
"""predicted / published - 1 of each published serving point, as the page shows it (to 0.1%)."""

SERVING_ERROR_BANDS: Mapping[str, str] = {
    "vllm": (
        "throughput +127% and +137% above the 2 published vLLM serving points (A100-40G, DeepSeek-OCR README and "
        "paper; conditions not stated, host-side n-gram logits processor not modelled)"
    ),
    "sglang": (
        "throughput +64% and +71% above the 2 published SGLang serving points (H200 OCR-2, MI300X; decode steps "
        "match, prefill stalls priced too cheap)"
    ),
}
"""Per runtime: the error of simulated throughput against published serving measurements, in words."""


def trust_line(runtime: str) -> str:
    """One line for outputs: the expected error of a simulated throughput on ``runtime``."""
    band = SERVING_ERROR_BANDS.get(runtime, "not validated against a published serving measurement")
    return f"expected error (docs/validation-runtimes.md): {band}; latencies are not validated under load"
