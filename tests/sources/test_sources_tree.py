"""The built-in DeepSeek-OCR v1 module tree against the model-facts §2: paths, classes, shapes, counts, order."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import ConfigError
from llm_perf_opt.sources.deepseek_ocr_v1 import DeepseekOCRForCausalLM, build_model


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sub(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


# model-facts §2.0 - §2.5, with the arithmetic
WINDOWED_BLOCK = 2 * 1536 + (1_771_776 + 590_592 + 2 * 27 * 64) + (768 * 3072 + 3072 + 3072 * 768 + 768)
GLOBAL_BLOCK = 2 * 1536 + (1_771_776 + 590_592 + 2 * 127 * 64) + (768 * 3072 + 3072 + 3072 * 768 + 768)
EXPERT = 3 * 1280 * 896
MOE_LAYER = 4 * 1280 * 1280 + 64 * EXPERT + 3 * 1280 * 1792 + 64 * 1280 + 2 * 1280
DENSE_LAYER = 4 * 1280 * 1280 + 3 * 1280 * 6848 + 2 * 1280

EXPECTED_PARAMS = {
    "": 3_336_106_240,
    "model": 3_170_627_840,
    "model.embed_tokens": 129280 * 1280,  # 165,478,400
    "model.layers": 2_603_776_000,
    "model.layers.0": DENSE_LAYER,  # 32,852,480
    "model.layers.0.mlp": 26_296_320,
    "model.layers.1": MOE_LAYER,  # 233,720,320
    "model.layers.11.mlp": 227_164_160,
    "model.layers.5.mlp.experts.63": EXPERT,  # 3,440,640
    "model.layers.5.mlp.shared_experts": 3 * 1280 * 1792,  # 6,881,280
    "model.layers.5.mlp.gate": 64 * 1280,  # 81,920
    "model.layers.3.self_attn": 4 * 1280 * 1280,  # 6,553,600
    "model.norm": 1280,
    "model.sam_model": 95_569_152,
    "model.sam_model.patch_embed.proj": 3 * 16 * 16 * 768 + 768,  # 590,592
    "model.sam_model.blocks.0": WINDOWED_BLOCK,  # 7,091,328
    "model.sam_model.blocks.2": GLOBAL_BLOCK,  # 7,104,128
    "model.sam_model.blocks.0.attn": 2_365_824,
    "model.sam_model.blocks.11.attn": 2_378_624,
    "model.sam_model.blocks.4.mlp": 4_722_432,
    "model.sam_model.neck.0": 768 * 256,  # 196,608
    "model.sam_model.neck.2": 9 * 256 * 256,  # 589,824
    "model.sam_model.net_2": 9 * 256 * 512,  # 1,179,648
    "model.sam_model.net_3": 9 * 512 * 1024,  # 4,718,592
    "model.vision_model": 303_177_728,
    "model.vision_model.embeddings": 1024 + 3 * 14 * 14 * 1024 + 257 * 1024,  # 866,304
    "model.vision_model.pre_layrnorm": 2048,
    "model.vision_model.transformer": 24 * 12_596_224,  # 302,309,376
    "model.vision_model.transformer.layers.23.self_attn": 3_148_800 + 1_049_600,
    "model.vision_model.transformer.layers.0.mlp": 8_393_728,
    "model.projector": 2048 * 1280 + 1280,  # 2,622,720
    "lm_head": 1280 * 129280,  # 165,478,400
}

EXPECTED_CLASSES = {
    "Linear": 2342,
    "DeepseekV2MLP": 716,  # 1 dense + 11 * (64 experts + 1 shared)
    "SiLU": 716,
    "LayerNorm": 73,
    "DeepseekV2RMSNorm": 25,
    "NoTPTransformerBlock": 24,
    "NoTPAttention": 24,
    "NoTPFeedForward": 24,
    "ModuleList": 14,
    "DeepseekV2DecoderLayer": 12,
    "LlamaAttention": 12,
    "LlamaRotaryEmbedding": 12,
    "Block": 12,
    "Attention": 12,
    "MLPBlock": 12,
    "GELU": 12,
    "DeepseekV2MoE": 11,
    "MoEGate": 11,
    "Conv2d": 6,
    "Embedding": 2,
    "LayerNorm2d": 2,
    "DeepseekOCRForCausalLM": 1,
    "DeepseekOCRModel": 1,
    "ImageEncoderViT": 1,
    "PatchEmbed": 1,
    "Sequential": 1,
    "VitModel": 1,
    "CLIPVisionEmbeddings": 1,
    "NoTPTransformer": 1,
    "MlpProjector": 1,
}


def test_total_parameters_match_the_checkpoint(base_meta: DeepseekOCRForCausalLM) -> None:
    assert _params(base_meta) == 6_672_212_480 // 2  # checkpoint index total_size / 2 bytes (bf16)


@pytest.mark.parametrize(("path", "count"), sorted(EXPECTED_PARAMS.items()))
def test_parameter_count_per_module(base_meta: DeepseekOCRForCausalLM, path: str, count: int) -> None:
    assert _params(_sub(base_meta, path)) == count


def test_layers_one_to_eleven_are_identical_moe_layers(base_meta: DeepseekOCRForCausalLM) -> None:
    sizes = {_params(_sub(base_meta, f"model.layers.{i}")) for i in range(1, 12)}
    assert sizes == {233_720_320}
    assert 32_852_480 + 11 * 233_720_320 == 2_603_776_000


def test_class_inventory(base_meta: DeepseekOCRForCausalLM) -> None:
    assert Counter(type(m).__name__ for m in base_meta.modules()) == EXPECTED_CLASSES


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("model.sam_model.blocks.2.attn", "Attention"),
        ("model.vision_model.transformer.layers.23.mlp.fc2", "Linear"),
        ("model.layers.7.mlp.experts.63.down_proj", "Linear"),
        ("model.layers.0.self_attn.rotary_emb", "LlamaRotaryEmbedding"),
        ("model.layers.0.mlp.act_fn", "SiLU"),
        ("model.layers.9.mlp.shared_experts.act_fn", "SiLU"),
        ("model.sam_model.neck.1", "LayerNorm2d"),
        ("model.sam_model.blocks.0.mlp.act", "GELU"),
        ("model.vision_model.embeddings.patch_embedding", "Conv2d"),
        ("model.projector.layers", "Linear"),
        ("lm_head", "Linear"),
    ],
)
def test_selected_paths_and_classes(base_meta: DeepseekOCRForCausalLM, path: str, cls: str) -> None:
    assert type(_sub(base_meta, path)).__name__ == cls


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("model.sam_model.pos_embed", (1, 64, 64, 768)),
        ("model.sam_model.blocks.2.attn.rel_pos_h", (127, 64)),
        ("model.sam_model.blocks.3.attn.rel_pos_w", (27, 64)),
        ("model.vision_model.embeddings.class_embedding", (1024,)),
        ("model.vision_model.embeddings.position_embedding.weight", (257, 1024)),
        ("model.layers.4.mlp.gate.weight", (64, 1280)),
        ("model.layers.0.mlp.gate_proj.weight", (6848, 1280)),
        ("model.image_newline", (1280,)),
        ("model.view_seperator", (1280,)),
        ("lm_head.weight", (129280, 1280)),
    ],
)
def test_parameter_shapes(base_meta: DeepseekOCRForCausalLM, name: str, shape: tuple[int, ...]) -> None:
    assert tuple(dict(base_meta.named_parameters())[name].shape) == shape


def test_parameter_order_own_parameters_of_model_first(base_meta: DeepseekOCRForCausalLM) -> None:
    names = [name for name, _ in base_meta.named_parameters()]
    assert names[:3] == ["model.image_newline", "model.view_seperator", "model.embed_tokens.weight"]
    assert names[-1] == "lm_head.weight"
    firsts = [next(i for i, n in enumerate(names) if n.startswith(p)) for p in _TOP_ORDER]
    assert firsts == sorted(firsts)


_TOP_ORDER = ("model.embed_tokens", "model.layers", "model.norm", "model.sam_model", "model.vision_model", "model.proj")


def test_state_dict_is_checkpoint_keys_plus_clip_position_ids(base_meta: DeepseekOCRForCausalLM) -> None:
    keys = list(base_meta.state_dict())
    assert len(keys) == 2710 + 1
    assert "model.vision_model.embeddings.position_ids" in keys
    assert not any(k.endswith("inv_freq") for k in keys)  # non-persistent RoPE buffer


def test_meta_build_allocates_nothing_and_is_inference_ready(base_meta: DeepseekOCRForCausalLM) -> None:
    assert {p.device.type for p in base_meta.parameters()} == {"meta"}
    assert {p.dtype for p in base_meta.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in base_meta.parameters())
    assert not base_meta.training
    assert base_meta.model.layers[0].self_attn.rotary_emb.inv_freq.shape == (64,)


def test_tiny_variant_has_the_same_structure() -> None:
    model = build_model(DeepseekOCRConfig.tiny())
    classes = Counter(type(m).__name__ for m in model.modules())
    assert set(classes) == set(EXPECTED_CLASSES)
    assert classes["DeepseekV2MoE"] == 2  # layers 1..2 of 3
    assert type(model.get_submodule("model.layers.1.mlp.experts.7.act_fn")).__name__ == "SiLU"


def test_unknown_attn_implementation_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"unknown attn_implementation 'flash'; expected one of eager, sdpa"):
        build_model(DeepseekOCRConfig.tiny(), attn_implementation="flash")
