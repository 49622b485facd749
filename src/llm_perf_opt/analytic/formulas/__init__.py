"""Closed-form cost formulas, one module per layer family (pure functions, keyword-only paper symbols).

``common`` (primitive ops in the tracer's eager op-level convention), ``sam``, ``clip``, ``projector``, ``decoder``,
``fused`` (the fused-kernel byte convention and working sets) and ``stage_peaks`` (each stage's traced peak live
set); for DeepSeek-OCR-2 ``qwen2_vision`` (its encoder) and ``ocr2`` (what transformers' implementation does
differently from v1's remote code).
"""

from llm_perf_opt.analytic.formulas import (
    clip,
    common,
    decoder,
    fused,
    ocr2,
    projector,
    qwen2_vision,
    sam,
    stage_peaks,
)

__all__ = ["clip", "common", "decoder", "fused", "ocr2", "projector", "qwen2_vision", "sam", "stage_peaks"]
