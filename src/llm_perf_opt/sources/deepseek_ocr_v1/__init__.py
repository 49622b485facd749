"""Clean-room PyTorch DeepSeek-OCR v1: the upstream module tree (names, paths, shapes), runnable on meta.

Written from ``facts/deepseek-ocr-v1.md``; no upstream code.  See :mod:`.model` for the forward API,
:mod:`.cache` for the KV cache and :mod:`.inputs` for the workload input builder.
"""

from llm_perf_opt.sources.deepseek_ocr_v1.build import build_model, init_random_weights
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache
from llm_perf_opt.sources.deepseek_ocr_v1.inputs import (
    DecodeInputs,
    ImageInputs,
    PrefillInputs,
    WorkloadInputs,
    build_inputs,
    image_token_count,
    make_inputs,
)
from llm_perf_opt.sources.deepseek_ocr_v1.model import CausalLMOutput, DeepseekOCRForCausalLM, DeepseekOCRModel
from llm_perf_opt.sources.deepseek_ocr_v1.moe import DEFAULT_ROUTING, ExpertRouting

__all__ = [
    "DEFAULT_ROUTING",
    "CausalLMOutput",
    "DecodeInputs",
    "DeepseekOCRForCausalLM",
    "DeepseekOCRModel",
    "ExpertRouting",
    "ImageInputs",
    "KVCache",
    "PrefillInputs",
    "WorkloadInputs",
    "build_inputs",
    "build_model",
    "image_token_count",
    "init_random_weights",
    "make_inputs",
]
