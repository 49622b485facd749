"""DeepSeek-OCR-2's analytic model under its own names: :func:`ocr2_analytic_costs` is the one front door
(:func:`llm_perf_opt.analytic.analytic_costs`, which takes either family's config); the composition is
:mod:`llm_perf_opt.analytic._ocr2`.
"""

from __future__ import annotations

from llm_perf_opt.analytic._ocr2 import Ocr2WorkloadLike, ocr2_model_params
from llm_perf_opt.analytic.compose import analytic_costs

__all__ = ["Ocr2WorkloadLike", "ocr2_analytic_costs", "ocr2_model_params"]

ocr2_analytic_costs = analytic_costs
"""The same front door as ``analytic_costs`` (the name OCR-2 callers use)."""
