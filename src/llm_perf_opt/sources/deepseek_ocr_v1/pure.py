"""The built-in modules whose calls depend on nothing but their structure and their arguments' layouts.

The tracer may replay a repeated call of such a module (:mod:`llm_perf_opt.tracer.replay`) instead of running it:
no attribute outside the module, no global table (a routing scope, a KV cache owner) and no value decides which ops
it makes.  Each class below was read for that; left out are the attention layers and decoder layers (they write the
KV cache), the MoE (its slice sizes come from a routing model it is handed) and the containers.
"""

from __future__ import annotations

from torch import nn

from llm_perf_opt.sources.deepseek_ocr_v1.clip import (
    CLIPVisionEmbeddings,
    MlpProjector,
    NoTPAttention,
    NoTPFeedForward,
    NoTPTransformerBlock,
)
from llm_perf_opt.sources.deepseek_ocr_v1.moe import DeepseekV2MLP
from llm_perf_opt.sources.deepseek_ocr_v1.sam import Attention, Block, LayerNorm2d, MLPBlock, PatchEmbed

__all__ = ["PURE_MODULES"]

PURE_MODULES: frozenset[type[nn.Module]] = frozenset(
    {
        Attention,
        Block,
        CLIPVisionEmbeddings,
        DeepseekV2MLP,
        LayerNorm2d,
        MLPBlock,
        MlpProjector,
        NoTPAttention,
        NoTPFeedForward,
        NoTPTransformerBlock,
        PatchEmbed,
    }
)
"""Built-in v1 classes a trace may replay (torch's own ``torch.nn`` modules are pure too, and may sit inside)."""
