"""Closed-form cost formulas, one module per layer family (pure functions, keyword-only paper symbols).

``common`` (primitive ops in the tracer's eager op-level convention), ``sam``, ``clip``, ``projector``, ``decoder``
and ``fused`` (the fused-kernel byte convention and working sets).
"""

from llm_perf_opt.analytic.formulas import clip, common, decoder, fused, projector, sam

__all__ = ["clip", "common", "decoder", "fused", "projector", "sam"]
