"""DeepSeek-OCR-2 resolution modes, tile rule and token counts: re-exported from :mod:`llm_perf_opt.workloads.ocr2`
(torch-free, where the analytic model and the reports read them)."""

from llm_perf_opt.workloads.ocr2 import OCR2_MODES, Ocr2Mode, Ocr2Workload, ocr2_grid, view_tokens

__all__ = ["OCR2_MODES", "Ocr2Mode", "Ocr2Workload", "ocr2_grid", "view_tokens"]
