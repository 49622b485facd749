"""Torch-free analytic model of DeepSeek-OCR v1 (and DeepSeek-OCR-2): closed-form costs per node, keyed like the trace.

``analytic_costs(config, workload, attention=..., routing=...)`` returns an :class:`AnalyticTree`, the project's one
cost tree (:class:`~llm_perf_opt.core.tree.CostTree`: module id -> inclusive node, plus fused-kernel bytes);
the formulas themselves live in :mod:`llm_perf_opt.analytic.formulas`, the table of known differences from the
trace in :mod:`llm_perf_opt.analytic.divergences`.  DeepSeek-OCR-2: :func:`ocr2_analytic_costs` (module
:mod:`llm_perf_opt.analytic.ocr2`).
"""

from llm_perf_opt.analytic.compose import ATTENTION_KINDS, analytic_costs, model_params, model_weight_bytes
from llm_perf_opt.analytic.ocr2 import ocr2_analytic_costs, ocr2_model_params
from llm_perf_opt.analytic.tree import AnalyticTree

__all__ = [
    "ATTENTION_KINDS",
    "AnalyticTree",
    "analytic_costs",
    "model_params",
    "model_weight_bytes",
    "ocr2_analytic_costs",
    "ocr2_model_params",
]
