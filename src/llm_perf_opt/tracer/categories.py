"""Operator categories: an op's category is that of the innermost module class it runs in; ops run directly in a
module whose class matches no category (a decoder layer, a container) fall back to the op family's category.
A fused attention op is always ``attention``.
"""

from __future__ import annotations

from functools import lru_cache

from attrs import field, frozen

__all__ = ["CATEGORIES", "CATEGORY_IDS", "CategorySpec", "category_of_class"]


@frozen(kw_only=True)
class CategorySpec:
    category_id: str = field(metadata={"help": "category id"})
    display_name: str = field(metadata={"help": "human-readable name"})
    description: str = field(metadata={"help": "what falls into it"})
    match_classes: tuple[str, ...] = field(metadata={"help": "module class names matched exactly"})
    match_suffixes: tuple[str, ...] = field(default=(), metadata={"help": "class-name suffixes matched after that"})


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        category_id="conv2d",
        display_name="Convolution",
        description="Ops inside convolution modules (patch embeddings, SAM neck and downsamplers).",
        match_classes=("Conv2d", "Conv1d", "Conv3d", "ConvTranspose2d"),
    ),
    CategorySpec(
        category_id="linear",
        display_name="Linear",
        description="Ops inside nn.Linear modules: projections, MLP layers, experts, lm_head.",
        match_classes=("Linear", "NonDynamicallyQuantizableLinear"),
    ),
    CategorySpec(
        category_id="attention",
        display_name="Attention core",
        description="Ops run directly in attention modules (scores, softmax, rel-pos, RoPE) and every fused SDPA op.",
        match_classes=(
            "Attention",
            "NoTPAttention",
            "LlamaAttention",
            "LlamaSdpaAttention",
            "LlamaFlashAttention2",
            "DeepseekV2Attention",
            "DeepseekV2FlashAttention2",
            "LlamaRotaryEmbedding",
            "DeepseekV2RotaryEmbedding",
        ),
        match_suffixes=("Attention", "Attention2", "RotaryEmbedding", "SelfAttention"),
    ),
    CategorySpec(
        category_id="norm",
        display_name="Normalisation",
        description="LayerNorm, LayerNorm2d and RMSNorm modules.",
        match_classes=("LayerNorm", "LayerNorm2d", "DeepseekV2RMSNorm", "LlamaRMSNorm", "RMSNorm", "GroupNorm"),
        match_suffixes=("Norm", "Norm2d", "RMSNorm"),
    ),
    CategorySpec(
        category_id="activation",
        display_name="Activation",
        description="Activation modules, and the gating/activation ops run directly in MLP modules.",
        match_classes=("GELU", "SiLU", "ReLU", "QuickGELU", "DeepseekV2MLP", "MLPBlock", "NoTPFeedForward"),
        match_suffixes=("GELU", "SiLU", "Activation", "MLP", "FeedForward"),
    ),
    CategorySpec(
        category_id="embedding",
        display_name="Embedding",
        description="Token and position embeddings (table lookups and their additions).",
        match_classes=("Embedding", "CLIPVisionEmbeddings", "PatchEmbed"),
        match_suffixes=("Embedding", "Embeddings"),
    ),
    CategorySpec(
        category_id="moe_routing",
        display_name="MoE routing",
        description="The gate (scores, top-k) and the dispatch/combine ops of MoE layers; the experts are linear.",
        match_classes=("MoEGate", "DeepseekV2MoE"),
        match_suffixes=("MoE", "Gate", "Router"),
    ),
    CategorySpec(
        category_id="elementwise",
        display_name="Elementwise",
        description="Arithmetic, comparisons and reductions run directly in containers (residual adds, scaling).",
        match_classes=(),
    ),
    CategorySpec(
        category_id="data_movement",
        display_name="Data movement",
        description="Copies, casts, concatenation, padding, gathers/scatters, fills and interpolation in containers.",
        match_classes=(),
    ),
    CategorySpec(
        category_id="other",
        display_name="Other",
        description="Anything not matched above (sorts in containers, unsupported ops); reported as a share.",
        match_classes=(),
    ),
)

CATEGORY_IDS: tuple[str, ...] = tuple(c.category_id for c in CATEGORIES)


@lru_cache(maxsize=1024)
def category_of_class(class_name: str) -> str | None:
    """Category of a module class: exact ``match_classes`` first, then ``match_suffixes``; None if neither."""
    for spec in CATEGORIES:
        if class_name in spec.match_classes:
            return spec.category_id
    for spec in CATEGORIES:
        if class_name.endswith(spec.match_suffixes) and spec.match_suffixes:
            return spec.category_id
    return None
