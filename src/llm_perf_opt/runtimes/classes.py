"""Which module class a node id names, without torch: the runtime kernel maps are keyed by class.

The traced tree carries each node's class (``TracedNode.qualified_class_name``); the analytic tree carries only ids.
Both models have a fixed module structure (docs/architecture.md), so the class follows from the id's path with its
indices replaced by ``N``: :data:`V1_CLASSES` and :data:`OCR2_CLASSES` list every path pattern of the built-in v1
tree and of DeepSeek-OCR-2 (transformers).  The one path whose class depends on the index is a decoder layer's
``mlp``: dense (an MLP) for the first ``first_k_dense_replace`` layers, MoE after them.

tests/runtimes check these tables against the committed golden trees (``third_party/**/golden``), node by node.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from llm_perf_opt.core.paths import split_module_path

__all__ = ["DECODER_PREFIXES", "FAMILIES", "OCR2_CLASSES", "V1_CLASSES", "class_of", "encoder_classes", "pattern_of"]

_L = "model.layers.N"
V1_CLASSES: Mapping[str, str] = {
    "": "DeepseekOCRForCausalLM",
    "lm_head": "Linear",
    "model": "DeepseekOCRModel",
    "model.embed_tokens": "Embedding",
    "model.layers": "ModuleList",
    _L: "DeepseekV2DecoderLayer",
    f"{_L}.input_layernorm": "DeepseekV2RMSNorm",
    f"{_L}.post_attention_layernorm": "DeepseekV2RMSNorm",
    f"{_L}.mlp": "DeepseekV2MoE",  # layers < first_k_dense_replace: DeepseekV2MLP
    f"{_L}.mlp.act_fn": "SiLU",
    f"{_L}.mlp.gate_proj": "Linear",
    f"{_L}.mlp.up_proj": "Linear",
    f"{_L}.mlp.down_proj": "Linear",
    f"{_L}.mlp.gate": "MoEGate",
    f"{_L}.mlp.experts": "ModuleList",
    f"{_L}.mlp.experts.N": "DeepseekV2MLP",
    f"{_L}.mlp.experts.N.act_fn": "SiLU",
    f"{_L}.mlp.experts.N.gate_proj": "Linear",
    f"{_L}.mlp.experts.N.up_proj": "Linear",
    f"{_L}.mlp.experts.N.down_proj": "Linear",
    f"{_L}.mlp.shared_experts": "DeepseekV2MLP",
    f"{_L}.mlp.shared_experts.act_fn": "SiLU",
    f"{_L}.mlp.shared_experts.gate_proj": "Linear",
    f"{_L}.mlp.shared_experts.up_proj": "Linear",
    f"{_L}.mlp.shared_experts.down_proj": "Linear",
    f"{_L}.self_attn": "LlamaAttention",
    f"{_L}.self_attn.q_proj": "Linear",
    f"{_L}.self_attn.k_proj": "Linear",
    f"{_L}.self_attn.v_proj": "Linear",
    f"{_L}.self_attn.o_proj": "Linear",
    f"{_L}.self_attn.rotary_emb": "LlamaRotaryEmbedding",
    "model.norm": "DeepseekV2RMSNorm",
    "model.projector": "MlpProjector",
    "model.projector.layers": "Linear",
    "model.sam_model": "ImageEncoderViT",
    "model.sam_model.blocks": "ModuleList",
    "model.sam_model.blocks.N": "Block",
    "model.sam_model.blocks.N.attn": "Attention",
    "model.sam_model.blocks.N.attn.proj": "Linear",
    "model.sam_model.blocks.N.attn.qkv": "Linear",
    "model.sam_model.blocks.N.mlp": "MLPBlock",
    "model.sam_model.blocks.N.mlp.act": "GELU",
    "model.sam_model.blocks.N.mlp.lin1": "Linear",
    "model.sam_model.blocks.N.mlp.lin2": "Linear",
    "model.sam_model.blocks.N.norm1": "LayerNorm",
    "model.sam_model.blocks.N.norm2": "LayerNorm",
    "model.sam_model.neck": "Sequential",
    "model.sam_model.neck.N": "Conv2d",  # odd indices: LayerNorm2d
    "model.sam_model.net_2": "Conv2d",
    "model.sam_model.net_3": "Conv2d",
    "model.sam_model.patch_embed": "PatchEmbed",
    "model.sam_model.patch_embed.proj": "Conv2d",
    "model.vision_model": "VitModel",
    "model.vision_model.embeddings": "CLIPVisionEmbeddings",
    "model.vision_model.embeddings.patch_embedding": "Conv2d",
    "model.vision_model.embeddings.position_embedding": "Embedding",
    "model.vision_model.pre_layrnorm": "LayerNorm",
    "model.vision_model.transformer": "NoTPTransformer",
    "model.vision_model.transformer.layers": "ModuleList",
    "model.vision_model.transformer.layers.N": "NoTPTransformerBlock",
    "model.vision_model.transformer.layers.N.layer_norm1": "LayerNorm",
    "model.vision_model.transformer.layers.N.layer_norm2": "LayerNorm",
    "model.vision_model.transformer.layers.N.mlp": "NoTPFeedForward",
    "model.vision_model.transformer.layers.N.mlp.fc1": "Linear",
    "model.vision_model.transformer.layers.N.mlp.fc2": "Linear",
    "model.vision_model.transformer.layers.N.self_attn": "NoTPAttention",
    "model.vision_model.transformer.layers.N.self_attn.out_proj": "Linear",
    "model.vision_model.transformer.layers.N.self_attn.qkv_proj": "Linear",
}
"""Built-in DeepSeek-OCR v1 (the upstream remote code's class names)."""

_T = "model.language_model.layers.N"
_S = "model.vision_tower.sam_encoder"
_E = "model.vision_tower.vision_encoder"
OCR2_CLASSES: Mapping[str, str] = {
    "": "DeepseekOcr2ForConditionalGeneration",
    "lm_head": "Linear",
    "model": "DeepseekOcr2Model",
    "model.language_model": "DeepseekOcr2TextModel",
    "model.language_model.embed_tokens": "Embedding",
    "model.language_model.layers": "ModuleList",
    _T: "DeepseekOcr2TextDecoderLayer",
    f"{_T}.input_layernorm": "DeepseekOcr2TextRMSNorm",
    f"{_T}.post_attention_layernorm": "DeepseekOcr2TextRMSNorm",
    f"{_T}.mlp": "DeepseekOcr2TextMoe",  # layers < first_k_dense_replace: DeepseekOcr2TextMLP
    f"{_T}.mlp.act_fn": "SiLUActivation",
    f"{_T}.mlp.gate_proj": "Linear",
    f"{_T}.mlp.up_proj": "Linear",
    f"{_T}.mlp.down_proj": "Linear",
    f"{_T}.mlp.experts": "DeepseekOcr2TextExperts",
    f"{_T}.mlp.experts.act_fn": "SiLUActivation",
    f"{_T}.mlp.gate": "DeepseekOcr2TextTopkRouter",
    f"{_T}.mlp.shared_experts": "DeepseekOcr2TextMLP",
    f"{_T}.mlp.shared_experts.act_fn": "SiLUActivation",
    f"{_T}.mlp.shared_experts.gate_proj": "Linear",
    f"{_T}.mlp.shared_experts.up_proj": "Linear",
    f"{_T}.mlp.shared_experts.down_proj": "Linear",
    f"{_T}.self_attn": "DeepseekOcr2TextAttention",
    f"{_T}.self_attn.q_proj": "Linear",
    f"{_T}.self_attn.k_proj": "Linear",
    f"{_T}.self_attn.v_proj": "Linear",
    f"{_T}.self_attn.o_proj": "Linear",
    "model.language_model.norm": "DeepseekOcr2TextRMSNorm",
    "model.language_model.rotary_emb": "DeepseekOcr2TextRotaryEmbedding",
    "model.multi_modal_projector": "Linear",
    "model.vision_tower": "DeepseekOcr2VisionModel",
    _S: "DeepseekOcr2SamVisionEncoder",
    f"{_S}.layers": "ModuleList",
    f"{_S}.layers.N": "DeepseekOcr2SamVisionLayer",
    f"{_S}.layers.N.attn": "DeepseekOcr2SamVisionSdpaAttention",
    f"{_S}.layers.N.attn.proj": "Linear",
    f"{_S}.layers.N.attn.qkv": "Linear",
    f"{_S}.layers.N.layer_norm1": "LayerNorm",
    f"{_S}.layers.N.layer_norm2": "LayerNorm",
    f"{_S}.layers.N.mlp": "DeepseekOcr2SamMLPBlock",
    f"{_S}.layers.N.mlp.act": "GELUActivation",
    f"{_S}.layers.N.mlp.lin1": "Linear",
    f"{_S}.layers.N.mlp.lin2": "Linear",
    f"{_S}.neck": "DeepseekOcr2SamVisionNeck",
    f"{_S}.neck.conv1": "Conv2d",
    f"{_S}.neck.conv2": "Conv2d",
    f"{_S}.neck.layer_norm1": "DeepseekOcr2SamLayerNorm",
    f"{_S}.neck.layer_norm2": "DeepseekOcr2SamLayerNorm",
    f"{_S}.patch_embed": "DeepseekOcr2SamPatchEmbeddings",
    f"{_S}.patch_embed.projection": "Conv2d",
    f"{_S}.proj": "DeepseekOcr2SamVisionProj",
    f"{_S}.proj.conv1": "Conv2d",
    f"{_S}.proj.conv2": "Conv2d",
    _E: "DeepseekOcr2VisionEncoder",
    f"{_E}.layers": "ModuleList",
    f"{_E}.layers.N": "DeepseekOcr2VisionEncoderLayer",
    f"{_E}.layers.N.input_layernorm": "DeepseekOcr2VisionRMSNorm",
    f"{_E}.layers.N.post_attention_layernorm": "DeepseekOcr2VisionRMSNorm",
    f"{_E}.layers.N.mlp": "DeepseekOcr2VisionMLP",
    f"{_E}.layers.N.mlp.act_fn": "SiLUActivation",
    f"{_E}.layers.N.mlp.gate_proj": "Linear",
    f"{_E}.layers.N.mlp.up_proj": "Linear",
    f"{_E}.layers.N.mlp.down_proj": "Linear",
    f"{_E}.layers.N.self_attn": "DeepseekOcr2VisionAttention",
    f"{_E}.layers.N.self_attn.q_proj": "Linear",
    f"{_E}.layers.N.self_attn.k_proj": "Linear",
    f"{_E}.layers.N.self_attn.v_proj": "Linear",
    f"{_E}.layers.N.self_attn.o_proj": "Linear",
    f"{_E}.norm": "DeepseekOcr2VisionRMSNorm",
    f"{_E}.rotary_emb": "DeepseekOcr2VisionRotaryEmbedding",
}
"""DeepSeek-OCR-2 as transformers builds it (``models/deepseek_ocr2``)."""

FAMILIES: Mapping[str, Mapping[str, str]] = {"v1": V1_CLASSES, "ocr2": OCR2_CLASSES}
DECODER_PREFIXES = ("model.layers", "model.language_model", "model.embed_tokens", "model.norm", "lm_head")
"""Path prefixes of the language model (with ``""`` and ``model``, the containers): what the kernel maps cover."""


def encoder_classes(family: str) -> tuple[str, ...]:
    """Classes that occur only outside the language model (vision encoders, projector): every runtime counts them
    eager, op by op as traced."""
    table = FAMILIES[family]
    decoder = {c for p, c in table.items() if p in ("", "model") or p.startswith(DECODER_PREFIXES)}
    index_dependent = {"v1": {"LayerNorm2d"}}.get(family, set())  # neck.N: odd indices (class_of)
    return tuple(sorted((set(table.values()) | index_dependent) - decoder))


_DENSE = {"v1": "DeepseekV2MLP", "ocr2": "DeepseekOcr2TextMLP"}
_LAYERS = {"v1": ("model", "layers"), "ocr2": ("model", "language_model", "layers")}


def _is_index(part: str) -> bool:
    return part.isdigit() or part.startswith("{")


def _first_index(part: str) -> int:
    body = part.strip("{}")
    return int(body.replace("..", ",").split(",")[0])


@lru_cache(maxsize=16384)
def pattern_of(node_id: str) -> tuple[str, int | None]:
    """``prefill/model.layers.{1..11}.mlp`` -> (``model.layers.N.mlp``, 1): the path with its indices as ``N`` and
    the first index of its first index component (None without one); ``root`` and stage nodes -> ("", None)."""
    _, sep, path = node_id.partition("/")
    if not sep:
        return "", None
    parts = split_module_path(path)
    first = next((_first_index(p) for p in parts if _is_index(p)), None)
    return ".".join("N" if _is_index(p) else p for p in parts), first


def class_of(node_id: str, *, family: str, first_k_dense_replace: int = 1) -> str | None:
    """The short class name of ``node_id`` in ``family`` (``v1`` or ``ocr2``); None for a path the table lacks."""
    table = FAMILIES[family]
    pattern, first = pattern_of(node_id)
    found = table.get(pattern)
    layers = ".".join(_LAYERS[family]) + ".N.mlp"
    if pattern == layers and first is not None and first < first_k_dense_replace:
        return _DENSE[family]
    if pattern == "model.sam_model.neck.N" and first is not None and first % 2 == 1:
        return "LayerNorm2d"
    return found
