"""Torch-free model configurations (the built-in model, the analytic formulas and the reports share them)."""

from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config, Qwen2EncoderConfig
from llm_perf_opt.config.deepseek_ocr_v1 import ClipConfig, DeepseekOCRConfig, ProjectorConfig, SamConfig

__all__ = [
    "ClipConfig",
    "DeepseekOCR2Config",
    "DeepseekOCRConfig",
    "ProjectorConfig",
    "Qwen2EncoderConfig",
    "SamConfig",
]
