"""Build DeepSeek-OCR-2 (transformers' ``DeepseekOcr2ForConditionalGeneration``) on the meta device.

From the published ``config.json`` (:mod:`.config`), bf16, eval, no weights; attention ``sdpa`` (the ``flash``
attention kind: SDPA calls become fused ops) or ``eager``; experts through the counting implementation
(:mod:`.experts`).  Requires transformers >= 5.10.1 and says so in one line otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from llm_perf_opt.errors import TraceError, UserError
from llm_perf_opt.sources.deepseek_ocr2.config import ocr2_config_kwargs, require_transformers
from llm_perf_opt.sources.deepseek_ocr2.experts import EXPERTS_IMPLEMENTATION, register_counting_experts
from llm_perf_opt.sources.upstream.loader import no_init_weights

__all__ = ["ATTN_IMPLEMENTATIONS", "build_ocr2_model", "experts_layers"]

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.experts$")


def build_ocr2_model(*, dtype: torch.dtype = torch.bfloat16, attn_implementation: str = "sdpa") -> nn.Module:
    """The whole DeepSeek-OCR-2 tree on meta (3,389,119,360 parameters with the published config)."""
    require_transformers()
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UserError(
            f"deepseek-ocr-2 attention implementation {attn_implementation!r} is not supported; expected one of "
            f"{', '.join(ATTN_IMPLEMENTATIONS)}"
        )
    # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
    from transformers import DeepseekOcr2Config, DeepseekOcr2ForConditionalGeneration

    register_counting_experts()
    config = DeepseekOcr2Config(**ocr2_config_kwargs())
    with torch.device("meta"), no_init_weights():
        model: Any = DeepseekOcr2ForConditionalGeneration(config)
    model.to(dtype)
    model.eval()
    model.requires_grad_(False)
    model.set_attn_implementation(attn_implementation)
    model.set_experts_implementation(EXPERTS_IMPLEMENTATION)
    tree: nn.Module = model
    return tree


def experts_layers(model: nn.Module) -> dict[int, int]:
    """``id(experts module) -> decoder layer index`` for every MoE layer (the routing model's ``layer_idx``)."""
    layers: dict[int, int] = {}
    for path, module in model.named_modules():
        match = _LAYER.search(path)
        if match is None:
            continue
        if getattr(module, "is_transposed", False) or getattr(module, "has_bias", False):
            raise TraceError(f"{path}: transposed or biased expert weights are not supported by the counting experts")
        layers[id(module)] = int(match.group(1))
    return layers
