"""DeepSeek-OCR-2's published ``config.json`` (shipped as data, with its source) and the transformers config from it.

The remote-code ``config.json`` (``deepseek_vl_v2`` layout: ``language_config``, ``vision_config.width``) is mapped onto
transformers' native ``DeepseekOcr2Config`` the way transformers' own conversion does: decoder keys from
``language_config`` (``first_k_dense_replace`` becomes ``mlp_layer_types``), SAM sizes from ``width.sam_vit_b``, the
Qwen2 encoder width from ``width["qwen2-0-5b"].dim``; the encoder's depth and heads are not in ``config.json`` (the
remote code hard-codes them) and come from ``data/source.json``.  Needs transformers >= 5.10.1.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from llm_perf_opt.config import DeepseekOCRConfig, SamConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config, Qwen2EncoderConfig
from llm_perf_opt.config.deepseek_ocr_v1 import DECODER_SIZE_KEYS
from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple

__all__ = [
    "EXPERTS_IMPLEMENTATION",
    "MIN_TRANSFORMERS",
    "analytic_config",
    "ocr2_config_kwargs",
    "published_config",
    "require_transformers",
    "source_facts",
]

EXPERTS_IMPLEMENTATION = "llm_perf_opt_routed"
"""The name the counting experts implementation (:mod:`.experts`) is registered under in transformers'
``ExpertsInterface``."""

MIN_TRANSFORMERS = (5, 10, 1)

_TEXT_KEYS = (
    *DECODER_SIZE_KEYS,
    "n_group",
    "topk_group",
    "topk_method",
    "bos_token_id",
    "eos_token_id",
    "max_position_embeddings",
)


def _data(name: str) -> dict[str, Any]:
    text = resources.files("llm_perf_opt.sources.deepseek_ocr2").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def published_config() -> dict[str, Any]:
    """deepseek-ai/DeepSeek-OCR-2 ``config.json`` as published (see ``data/source.json``)."""
    return _data("config.json")


@cache
def source_facts() -> dict[str, Any]:
    """Where the shipped values come from, and the values ``config.json`` does not carry."""
    return _data("source.json")


def ocr2_config_kwargs(raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DeepseekOcr2Config`` keyword arguments from a remote-code ``config.json`` (default: the published one)."""
    raw = raw if raw is not None else published_config()
    facts = source_facts()["values_not_in_config_json"]
    language = raw["language_config"]
    text = {key: language[key] for key in _TEXT_KEYS}
    dense = int(language.get("first_k_dense_replace", 0))
    text["mlp_layer_types"] = ["dense"] * dense + ["sparse"] * (int(language["num_hidden_layers"]) - dense)
    width = raw["vision_config"]["width"]
    sam = width["sam_vit_b"]
    encoder = facts["encoder"]
    return {
        "text_config": text,
        "vision_config": {
            "sam_config": {
                "hidden_size": sam["width"],
                "num_hidden_layers": sam["layers"],
                "num_attention_heads": sam["heads"],
                "global_attn_indexes": sam["global_attn_indexes"],
                "downsample_channels": facts["sam_downsample_channels"],
            },
            "encoder_config": {
                "hidden_size": width["qwen2-0-5b"]["dim"],
                "num_hidden_layers": encoder["num_hidden_layers"],
                "num_attention_heads": encoder["num_attention_heads"],
                "num_key_value_heads": encoder["num_key_value_heads"],
                "intermediate_size": encoder["intermediate_size"],
                "rms_norm_eps": encoder["rms_norm_eps"],
                "rope_parameters": {"rope_type": "default", "rope_theta": encoder["rope_theta"]},
                "vocab_size": 1,
            },
        },
        "image_token_id": facts["image_token_id"],
        "tie_word_embeddings": False,
    }


@cache
def analytic_config() -> DeepseekOCR2Config:
    """The torch-free config the analytic model reads, from the same values as :func:`ocr2_config_kwargs`."""
    kwargs = ocr2_config_kwargs()
    sam, enc = kwargs["vision_config"]["sam_config"], kwargs["vision_config"]["encoder_config"]
    decoder = DeepseekOCRConfig.from_hf_config(published_config()["language_config"], variant="deepseek-ocr-2")
    return DeepseekOCR2Config(
        decoder=decoder,
        sam=SamConfig(
            embed_dim=int(sam["hidden_size"]),
            depth=int(sam["num_hidden_layers"]),
            num_heads=int(sam["num_attention_heads"]),
            global_attn_indexes=tuple(int(i) for i in sam["global_attn_indexes"]),
            downsample_channels=(int(sam["downsample_channels"][0]), int(sam["downsample_channels"][1])),
        ),
        encoder=Qwen2EncoderConfig(
            hidden_size=int(enc["hidden_size"]),
            num_hidden_layers=int(enc["num_hidden_layers"]),
            num_attention_heads=int(enc["num_attention_heads"]),
            num_key_value_heads=int(enc["num_key_value_heads"]),
            intermediate_size=int(enc["intermediate_size"]),
            rms_norm_eps=float(enc["rms_norm_eps"]),
            rope_theta=float(enc["rope_parameters"]["rope_theta"]),
        ),
    )


def require_transformers() -> str:
    """The installed transformers version, or a one-line UserError when it has no ``deepseek_ocr2`` model."""
    version = installed_transformers()
    if version is None or version_tuple(version) < MIN_TRANSFORMERS:
        need = ".".join(map(str, MIN_TRANSFORMERS))
        raise UserError(
            f"model source deepseek-ocr-2 runs through transformers' own deepseek_ocr2 model, which needs "
            f"transformers >= {need}; installed: {version or 'none'}; fix: pip install 'transformers>={need}' "
            "(in an environment separate from DeepSeek-OCR v1 remote code, which needs transformers 4.46.3)"
        )
    return version
