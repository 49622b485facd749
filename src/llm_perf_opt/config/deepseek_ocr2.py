"""Torch-free DeepSeek-OCR-2 configuration for the analytic model: SAM, the Qwen2 encoder, projector, decoder.

Built from the published ``config.json`` by :func:`llm_perf_opt.sources.deepseek_ocr2.config.analytic_config`
(the same values transformers' ``DeepseekOcr2Config`` is built from).  The decoder is v1's
(:class:`DeepseekOCRConfig`); SAM is v1's ViT-B with an 896-channel last conv; the encoder is a Qwen2-0.5B-style
stack over the SAM tokens followed by learnable queries (144 for a 768 px view, 256 for 1024 px).
"""

from __future__ import annotations

from attrs import field, frozen

from llm_perf_opt.config.deepseek_ocr_v1 import DeepseekOCRConfig, SamConfig

__all__ = ["DeepseekOCR2Config", "Qwen2EncoderConfig"]


@frozen(kw_only=True)
class Qwen2EncoderConfig:
    """The vision encoder (``DeepseekOcr2VisionEncoder``): GQA attention with q/k/v bias, SwiGLU MLP, RMSNorm."""

    hidden_size: int = field(default=896, metadata={"help": "width (the SAM output channels)"})
    num_hidden_layers: int = field(default=24, metadata={"help": "layers"})
    num_attention_heads: int = field(default=14, metadata={"help": "query heads"})
    num_key_value_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    intermediate_size: int = field(default=4864, metadata={"help": "MLP hidden width"})
    rms_norm_eps: float = field(default=1e-6, metadata={"help": "RMSNorm epsilon"})
    rope_theta: float = field(default=1_000_000.0, metadata={"help": "RoPE base"})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@frozen(kw_only=True)
class DeepseekOCR2Config:
    """DeepSeek-OCR-2: SAM ViT-B -> Qwen2 encoder (queries) -> linear projector -> v1's decoder."""

    decoder: DeepseekOCRConfig = field(metadata={"help": "the language model (v1's DeepSeek-V2 MoE decoder)"})
    sam: SamConfig = field(
        factory=lambda: SamConfig(downsample_channels=(512, 896)),
        metadata={"help": "SAM ViT-B; downsample_channels are the two stride-2 convs of its proj"},
    )
    encoder: Qwen2EncoderConfig = field(factory=Qwen2EncoderConfig, metadata={"help": "the Qwen2-style encoder"})
    query_tokens: tuple[tuple[int, int], ...] = field(
        default=((768, 144), (1024, 256)),
        metadata={"help": "(view side px, learnable queries) per query bank"},
    )

    @property
    def projector_in(self) -> int:
        """``multi_modal_projector`` input width (the encoder's)."""
        return self.encoder.hidden_size

    @property
    def projector_out(self) -> int:
        """``multi_modal_projector`` output width (the decoder's)."""
        return self.decoder.hidden_size
