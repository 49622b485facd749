"""DeepSeek-OCR-2 through transformers' own ``deepseek_ocr2`` model (transformers >= 5.10.1), on meta.

:mod:`.config` (published ``config.json`` shipped as data, with its source), :mod:`.modes` (resolution modes, tile
rule, token counts; torch-free), :mod:`.experts` (counting experts implementation), :mod:`.build`, :mod:`.driver`,
:mod:`.source` (the ``deepseek-ocr-2`` model source).
"""

from llm_perf_opt.workloads.ocr2 import OCR2_MODES, Ocr2Mode, Ocr2Workload, ocr2_grid, view_tokens

__all__ = ["OCR2_MODES", "Ocr2Mode", "Ocr2Workload", "ocr2_grid", "view_tokens"]
