"""DeepseekOCRConfig: upstream defaults, named constructors, consistency rules, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attrs import evolve

from llm_perf_opt.config import ClipConfig, DeepseekOCRConfig, ProjectorConfig, SamConfig
from llm_perf_opt.errors import ConfigError

# config.json keys of upstream deepseek-ai/DeepSeek-OCR (model-facts §1a), a subset plus keys the model ignores
UPSTREAM_CONFIG = {
    "vocab_size": 129280,
    "hidden_size": 1280,
    "intermediate_size": 6848,
    "moe_intermediate_size": 896,
    "num_hidden_layers": 12,
    "num_attention_heads": 10,
    "num_key_value_heads": 10,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
    "first_k_dense_replace": 1,
    "topk_method": "greedy",
    "n_group": 1,
    "topk_group": 1,
    "use_mla": False,
    "q_lora_rank": None,
    "kv_lora_rank": None,
    "max_position_embeddings": 8192,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "bfloat16",
    "model_type": "deepseek_vl_v2",
    "projector_config": {"projector_type": "linear", "input_dim": 2048, "n_embed": 1280},
}


def test_base_holds_the_upstream_values() -> None:
    config = DeepseekOCRConfig.base()
    assert (config.hidden_size, config.num_hidden_layers, config.head_dim) == (1280, 12, 1280 // 10)
    assert config.sam.global_attn_indexes == (2, 5, 8, 11) and config.sam.mlp_dim == 768 * 4
    assert config.clip.num_positions == (224 // 14) ** 2 + 1  # 257
    assert [config.is_moe_layer(i) for i in range(12)] == [False] + [True] * 11
    config.check()


def test_from_hf_config_reads_upstream_config_json(tmp_path: Path) -> None:
    assert DeepseekOCRConfig.from_hf_config(UPSTREAM_CONFIG) == DeepseekOCRConfig.base()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(UPSTREAM_CONFIG | {"num_hidden_layers": 4}), encoding="utf-8")
    assert DeepseekOCRConfig.from_json_file(path).num_hidden_layers == 4


def test_a_config_missing_a_key_is_one_clear_line() -> None:
    mapping = {k: v for k, v in UPSTREAM_CONFIG.items() if k != "n_routed_experts"}
    with pytest.raises(ConfigError) as info:
        DeepseekOCRConfig.from_hf_config(mapping)
    message = str(info.value)
    assert message.startswith("config is missing key(s) n_routed_experts; a DeepSeek-OCR config.json carries ")
    assert "\n" not in message


def test_bad_values_and_files_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config key hidden_size must be int, got '1280'$"):
        DeepseekOCRConfig.from_hf_config(UPSTREAM_CONFIG | {"hidden_size": "1280"})
    with pytest.raises(ConfigError, match=r"^cannot read config .*nope.json"):
        DeepseekOCRConfig.from_json_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"is not valid JSON"):
        DeepseekOCRConfig.from_json_file(bad)


def test_tiny_is_consistent_and_chains_the_vision_sizes() -> None:
    tiny = DeepseekOCRConfig.tiny()
    tiny.check()
    assert tiny.clip.hidden_size == tiny.sam.downsample_channels[1]  # CLIP consumes SAM net_3 features
    assert tiny.projector.input_dim == tiny.clip.hidden_size + tiny.sam.downsample_channels[1]
    assert tiny.projector.n_embed == tiny.hidden_size
    assert (tiny.sam.img_size, tiny.sam.patch_size, tiny.sam.window_size) == (1024, 16, 14)  # same image geometry


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clip": ClipConfig(hidden_size=512)}, r"clip hidden_size 512 must equal the SAM net_3 channels 1024"),
        ({"projector": ProjectorConfig(input_dim=1024)}, r"projector input_dim 1024 must equal .* = 2048"),
        ({"projector": ProjectorConfig(n_embed=1024)}, r"projector n_embed 1024 must equal hidden_size 1280"),
        ({"sam": SamConfig(num_heads=5)}, r"sam embed_dim 768 must be divisible by num_heads 5"),
        ({"sam": SamConfig(global_attn_indexes=(2, 12))}, r"global_attn_indexes \(2, 12\) must lie in 0..11"),
        ({"num_attention_heads": 256, "num_key_value_heads": 256}, r"head_dim 5 .* must be even"),
    ],
)
def test_inconsistent_sizes_are_rejected(change: dict[str, object], message: str) -> None:
    config = evolve(DeepseekOCRConfig.base(), **change)
    with pytest.raises(ConfigError, match=message):
        config.check()
