"""DeepSeek-OCR v1 configuration, torch-free.

The language-model keys are upstream's ``config.json`` keys (model-facts §1a) with the defaults of
``DeepseekV2Config`` where ``config.json`` leaves them out.  The vision and projector sizes that upstream
hard-codes in ``deepencoder.py`` / ``DeepseekOCRModel.__init__`` are fields here, defaulting to upstream's values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import asdict, evolve, field, frozen

from llm_perf_opt.errors import ConfigError

__all__ = ["DECODER_SIZE_KEYS", "ClipConfig", "DeepseekOCRConfig", "ProjectorConfig", "SamConfig"]


@frozen(kw_only=True)
class SamConfig:
    """SAM ViT-B image encoder (``build_sam_vit_b``); model-facts §2.1."""

    img_size: int = field(default=1024, metadata={"help": "input side the absolute position table is built for (px)"})
    patch_size: int = field(default=16, metadata={"help": "patch conv kernel and stride (px)"})
    in_chans: int = field(default=3, metadata={"help": "image channels"})
    embed_dim: int = field(default=768, metadata={"help": "transformer width"})
    depth: int = field(default=12, metadata={"help": "number of blocks"})
    num_heads: int = field(default=12, metadata={"help": "attention heads"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP hidden = embed_dim * mlp_ratio"})
    out_chans: int = field(default=256, metadata={"help": "neck output channels"})
    window_size: int = field(default=14, metadata={"help": "windowed-attention side (tokens)"})
    global_attn_indexes: tuple[int, ...] = field(
        default=(2, 5, 8, 11), metadata={"help": "blocks with global attention"}
    )
    downsample_channels: tuple[int, int] = field(
        default=(512, 1024), metadata={"help": "output channels of net_2 and net_3"}
    )
    layer_norm_eps: float = field(default=1e-6, metadata={"help": "LayerNorm epsilon"})

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


@frozen(kw_only=True)
class ClipConfig:
    """CLIP-L encoder fed with SAM features (``build_clip_l``); model-facts §2.2."""

    num_layers: int = field(default=24, metadata={"help": "transformer blocks"})
    hidden_size: int = field(default=1024, metadata={"help": "width"})
    num_attention_heads: int = field(default=16, metadata={"help": "attention heads"})
    ffn_hidden_size: int = field(default=4096, metadata={"help": "MLP hidden width"})
    image_size: int = field(default=224, metadata={"help": "image side the position table is built for (px)"})
    patch_size: int = field(default=14, metadata={"help": "patch conv (unused in OCR) kernel and stride (px)"})
    layernorm_epsilon: float = field(default=1e-5, metadata={"help": "LayerNorm epsilon"})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_positions(self) -> int:
        """Position-table rows: (image_size/patch_size)^2 + 1 CLS = 257."""
        return (self.image_size // self.patch_size) ** 2 + 1


@frozen(kw_only=True)
class ProjectorConfig:
    """Linear projector from fused [CLIP ; SAM] features to the decoder width; model-facts §2.3."""

    projector_type: str = field(default="linear", metadata={"help": "only 'linear' is on the executed path"})
    input_dim: int = field(default=2048, metadata={"help": "CLIP width + SAM net_3 channels"})
    n_embed: int = field(default=1280, metadata={"help": "decoder hidden size"})


DECODER_SIZE_KEYS: tuple[str, ...] = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "moe_intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "n_routed_experts",
    "n_shared_experts",
    "num_experts_per_tok",
)
"""The DeepSeek-V2 decoder's size keys in a ``config.json`` (v1's top level, OCR-2's ``language_config``)."""

# config.json keys that upstream's file carries: a mapping without one of them is rejected.
_REQUIRED_KEYS: tuple[str, ...] = (*DECODER_SIZE_KEYS, "first_k_dense_replace")


@frozen(kw_only=True)
class DeepseekOCRConfig:
    """The whole model: decoder keys as in upstream ``config.json`` plus the hard-coded vision sizes.

    Build it with :meth:`base` (upstream values), :meth:`tiny` (small test variant), :meth:`from_hf_config`
    (a ``config.json``-style mapping) or :meth:`from_json_file`.
    """

    variant: str = field(default="deepseek-ocr-v1-base", metadata={"help": "variant name"})
    vocab_size: int = field(default=129280, metadata={"help": "token vocabulary"})
    hidden_size: int = field(default=1280, metadata={"help": "decoder width"})
    intermediate_size: int = field(default=6848, metadata={"help": "dense MLP hidden width (layer 0)"})
    moe_intermediate_size: int = field(default=896, metadata={"help": "routed expert hidden width"})
    num_hidden_layers: int = field(default=12, metadata={"help": "decoder layers"})
    num_attention_heads: int = field(default=10, metadata={"help": "query heads"})
    num_key_value_heads: int = field(default=10, metadata={"help": "key/value heads"})
    n_routed_experts: int = field(default=64, metadata={"help": "routed experts per MoE layer"})
    n_shared_experts: int = field(default=2, metadata={"help": "shared experts (fused into one MLP)"})
    num_experts_per_tok: int = field(default=6, metadata={"help": "top-k"})
    first_k_dense_replace: int = field(default=1, metadata={"help": "leading dense layers"})
    moe_layer_freq: int = field(default=1, metadata={"help": "MoE every n-th layer after the dense ones"})
    topk_method: str = field(default="greedy", metadata={"help": "expert selection"})
    n_group: int = field(default=1, metadata={"help": "expert groups"})
    topk_group: int = field(default=1, metadata={"help": "groups kept"})
    use_mla: bool = field(default=False, metadata={"help": "multi-head latent attention (false: plain MHA)"})
    max_position_embeddings: int = field(default=8192, metadata={"help": "RoPE module argument"})
    rope_theta: float = field(default=10000.0, metadata={"help": "RoPE base"})
    rms_norm_eps: float = field(default=1e-6, metadata={"help": "RMSNorm epsilon"})
    hidden_act: str = field(default="silu", metadata={"help": "MLP activation"})
    attention_bias: bool = field(default=False, metadata={"help": "bias on q/k/v/o projections"})
    norm_topk_prob: bool = field(default=False, metadata={"help": "renormalise top-k weights"})
    routed_scaling_factor: float = field(default=1.0, metadata={"help": "routed output scale"})
    scoring_func: str = field(default="softmax", metadata={"help": "gate scoring"})
    tie_word_embeddings: bool = field(default=False, metadata={"help": "lm_head shares embed_tokens"})
    bos_token_id: int = field(default=0, metadata={"help": "BOS id"})
    eos_token_id: int = field(default=1, metadata={"help": "EOS id"})
    image_token_id: int = field(default=128815, metadata={"help": "<image> id (hard-coded upstream)"})
    torch_dtype: str = field(default="bfloat16", metadata={"help": "checkpoint dtype"})
    sam: SamConfig = field(factory=SamConfig, metadata={"help": "SAM encoder sizes"})
    clip: ClipConfig = field(factory=ClipConfig, metadata={"help": "CLIP encoder sizes"})
    projector: ProjectorConfig = field(factory=ProjectorConfig, metadata={"help": "projector sizes"})
    downsample_ratio: int = field(default=4, metadata={"help": "SAM net_2*net_3 spatial downsampling"})
    crop_size: int = field(default=640, metadata={"help": "local crop side (px)"})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Upstream's rule: MoE if layer_idx >= first_k_dense_replace and layer_idx % moe_layer_freq == 0."""
        return (
            self.n_routed_experts > 0
            and layer_idx >= self.first_k_dense_replace
            and layer_idx % self.moe_layer_freq == 0
        )

    # -- named constructors -------------------------------------------------------------------
    @classmethod
    def base(cls) -> DeepseekOCRConfig:
        """Upstream ``deepseek-ai/DeepSeek-OCR`` values (3,336,106,240 parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> DeepseekOCRConfig:
        """Same structure and image geometry, small widths: a real CPU forward in well under a second."""
        return cls(
            variant="deepseek-ocr-v1-tiny",
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_routed_experts=8,
            n_shared_experts=2,
            num_experts_per_tok=2,
            first_k_dense_replace=1,
            image_token_id=500,
            sam=SamConfig(
                embed_dim=32,
                depth=4,
                num_heads=2,
                out_chans=16,
                global_attn_indexes=(1, 3),
                downsample_channels=(32, 32),
            ),
            clip=ClipConfig(num_layers=2, hidden_size=32, num_attention_heads=2, ffn_hidden_size=64),
            projector=ProjectorConfig(input_dim=64, n_embed=64),
        )

    @classmethod
    def from_hf_config(cls, mapping: Mapping[str, Any], *, variant: str = "deepseek-ocr-v1-base") -> DeepseekOCRConfig:
        """Build from a ``config.json``-style mapping (upstream keys, model-facts §1a).

        Keys upstream's ``config.json`` carries are required; ``DeepseekV2Config`` defaults fill the rest.
        Unknown keys are ignored (``config.json`` carries many the model does not read).
        """
        missing = [key for key in _REQUIRED_KEYS if key not in mapping]
        if missing:
            raise ConfigError(
                f"config is missing key(s) {', '.join(missing)}; a DeepSeek-OCR config.json carries "
                f"{', '.join(_REQUIRED_KEYS)}"
            )
        defaults = cls()
        kwargs: dict[str, Any] = {"variant": variant}
        for name, default in asdict(defaults, recurse=False).items():
            if name in {"variant", "sam", "clip", "projector"} or name not in mapping:
                continue
            value = mapping[name]
            if value is None:
                continue
            kwargs[name] = _coerce(name, value, default)
        config = evolve(defaults, **kwargs)
        config.check()
        return config

    @classmethod
    def from_json_file(cls, path: Path, *, variant: str = "deepseek-ocr-v1-base") -> DeepseekOCRConfig:
        """Read a ``config.json`` file; a missing or malformed file is a one-line :class:`ConfigError`."""
        try:
            mapping = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(mapping, dict):
            raise ConfigError(f"config {path} must hold a JSON object, got {type(mapping).__name__}")
        return cls.from_hf_config(mapping, variant=variant)

    def check(self) -> None:
        """Reject values no model can have, naming the key and what is allowed."""
        positive = (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"config key {name} must be a positive integer, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} must be divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads {self.num_attention_heads} must be divisible by "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.n_routed_experts and not 0 < self.num_experts_per_tok <= self.n_routed_experts:
            raise ConfigError(
                f"num_experts_per_tok must be in 1..n_routed_experts ({self.n_routed_experts}), "
                f"got {self.num_experts_per_tok}"
            )
        if self.use_mla:
            raise ConfigError("use_mla=true (multi-head latent attention) is not supported; DeepSeek-OCR v1 uses MHA")
        if self.topk_method != "greedy":
            raise ConfigError(f"topk_method {self.topk_method!r} is not supported; expected 'greedy'")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim {self.head_dim} (hidden_size / num_attention_heads) must be even for RoPE")
        self._check_vision()

    def _check_vision(self) -> None:
        """The vision sizes must chain: SAM -> CLIP (fed SAM features) -> projector -> decoder."""
        sam, clip, proj = self.sam, self.clip, self.projector
        sam_out = sam.downsample_channels[1]
        rules = (
            (
                sam.embed_dim % sam.num_heads == 0,
                f"sam embed_dim {sam.embed_dim} must be divisible by num_heads {sam.num_heads}",
            ),
            (
                clip.hidden_size % clip.num_attention_heads == 0,
                f"clip hidden_size {clip.hidden_size} must be divisible by "
                f"num_attention_heads {clip.num_attention_heads}",
            ),
            (
                clip.hidden_size == sam_out,
                f"clip hidden_size {clip.hidden_size} must equal the SAM net_3 channels {sam_out} "
                "(CLIP consumes SAM features)",
            ),
            (
                proj.input_dim == clip.hidden_size + sam_out,
                f"projector input_dim {proj.input_dim} must equal clip hidden_size + SAM net_3 channels "
                f"= {clip.hidden_size + sam_out}",
            ),
            (
                proj.n_embed == self.hidden_size,
                f"projector n_embed {proj.n_embed} must equal hidden_size {self.hidden_size}",
            ),
            (
                all(0 <= i < sam.depth for i in sam.global_attn_indexes),
                f"sam global_attn_indexes {sam.global_attn_indexes} must lie in 0..{sam.depth - 1}",
            ),
        )
        for ok, message in rules:
            if not ok:
                raise ConfigError(message)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check a config value against the type of its default; ints are accepted for float keys."""
    expected = type(default)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"config key {name} must be {expected.__name__}, got {value!r}")
    return value
