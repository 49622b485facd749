"""Decoder layers of DeepSeek-OCR v1 (upstream ``modeling_deepseekv2.py`` + transformers 4.46 Llama attention).

With ``use_mla=false`` upstream instantiates transformers 4.46's ``LlamaAttention`` (model-facts §2.4): q/k/v/o without
bias, a per-layer ``LlamaRotaryEmbedding`` recomputing cos/sin from ``position_ids`` in every layer (fp32 matmul of
``inv_freq`` with the positions), rotate-half RoPE, scores scaled by ``1/sqrt(head_dim)``.  Two attention
implementations share the same parameters:

* ``"eager"``: explicit ``matmul``, additive causal mask (prefill; none for a 1-token step), fp32 softmax, ``matmul``;
* ``"sdpa"``: one ``F.scaled_dot_product_attention(..., is_causal=...)`` call, no materialised mask.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import ConfigError
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache
from llm_perf_opt.sources.deepseek_ocr_v1.moe import DeepseekV2MLP, DeepseekV2MoE, ExpertRouting

__all__ = [
    "ATTN_IMPLEMENTATIONS",
    "DeepseekV2DecoderLayer",
    "DeepseekV2RMSNorm",
    "LlamaAttention",
    "LlamaRotaryEmbedding",
    "apply_rotary_pos_emb",
    "causal_mask",
    "rotate_half",
]

ATTN_IMPLEMENTATIONS = ("eager", "sdpa")


class DeepseekV2RMSNorm(nn.Module):
    """RMSNorm computed in fp32, cast back to the input dtype, then scaled by ``weight``."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: Tensor) -> Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LlamaRotaryEmbedding(nn.Module):
    """Default RoPE: ``inv_freq[i] = theta^(-2i/d)`` (non-persistent buffer, ``d/2`` entries); cos/sin per call."""

    inv_freq: Tensor

    def __init__(self, config: DeepseekOCRConfig) -> None:
        super().__init__()
        self.rope_type = "default"
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.attention_scaling = 1.0
        dim = config.head_dim
        # computed in fp32 on the CPU, then placed with a factory call so that it lands on the build device
        # (tensor arithmetic on meta would pull in torch's reference decompositions: slow on first use)
        exponents = torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float() / dim
        inv_freq = (1.0 / (config.rope_theta**exponents)).tolist()
        self.register_buffer("inv_freq", torch.tensor(inv_freq, dtype=torch.float32), persistent=False)

    @torch.no_grad()
    def forward(self, x: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """``cos, sin`` of shape ``[B, q, d]`` in ``x.dtype`` for ``position_ids [B, q]`` (computed in fp32)."""
        inv_freq = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        positions = position_ids[:, None, :].float()
        with _autocast_off(x.device):
            freqs = (inv_freq.float() @ positions.float()).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos()
            sin = emb.sin()
        cos = cos * self.attention_scaling
        sin = sin * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Upstream forces fp32 with ``autocast(enabled=False)``; autocast has no meta backend, and needs none there."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary_pos_emb(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate-half RoPE on ``q, k [B, H, q, d]`` with ``cos, sin [B, q, d]``."""
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def causal_mask(*, batch: int, q_len: int, past_len: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Additive causal mask ``[B, 1, q, past + q]``: 0 where a key is visible, the dtype's minimum elsewhere.

    Built like transformers 4.46 ``_make_causal_mask`` (full, arange, masked_fill_, cat zeros for the past, expand).
    """
    mask = torch.full((q_len, q_len), torch.finfo(dtype).min, device=device)
    cond = torch.arange(mask.size(-1), device=device)
    mask.masked_fill_(cond < (cond + 1).view(mask.size(-1), 1), 0)
    mask = mask.to(dtype)
    if past_len > 0:
        mask = torch.cat([torch.zeros(q_len, past_len, dtype=dtype, device=device), mask], dim=-1)
    return mask[None, None, :, :].expand(batch, 1, q_len, q_len + past_len)


def repeat_kv(hidden_states: Tensor, n_rep: int) -> Tensor:
    """Repeat KV heads for grouped-query attention (identity for DeepSeek-OCR's 10/10 heads)."""
    if n_rep == 1:
        return hidden_states
    batch, heads, length, dim = hidden_states.shape
    expanded = hidden_states[:, :, None, :, :].expand(batch, heads, n_rep, length, dim)
    return expanded.reshape(batch, heads * n_rep, length, dim)


class LlamaAttention(nn.Module):
    """Multi-head attention with RoPE and a KV cache; ``attn_implementation`` picks eager or SDPA."""

    def __init__(self, config: DeepseekOCRConfig, layer_idx: int, attn_implementation: str = "eager") -> None:
        super().__init__()
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"unknown attn_implementation {attn_implementation!r}; "
                f"expected one of {', '.join(ATTN_IMPLEMENTATIONS)}"
            )
        self.layer_idx = layer_idx
        self.attn_implementation = attn_implementation
        self.attention_dropout = 0.0
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.is_causal = True
        bias = config.attention_bias
        self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=bias)
        self.rotary_emb = LlamaRotaryEmbedding(config)

    def forward(
        self,
        hidden_states: Tensor,
        *,
        attention_mask: Tensor | None,
        position_ids: Tensor,
        past_key_value: KVCache,
    ) -> tuple[Tensor, None, KVCache]:
        batch, q_len, _ = hidden_states.size()
        query = self.q_proj(hidden_states).view(batch, q_len, -1, self.head_dim).transpose(1, 2)
        key = self.k_proj(hidden_states).view(batch, q_len, -1, self.head_dim).transpose(1, 2)
        value = self.v_proj(hidden_states).view(batch, q_len, -1, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(value, position_ids)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        past_len = past_key_value.seq_length(self.layer_idx)
        key, value = past_key_value.update(self.layer_idx, key, value)
        key = repeat_kv(key, self.num_key_value_groups)
        value = repeat_kv(value, self.num_key_value_groups)
        if self.attn_implementation == "sdpa":
            out = self._sdpa(query, key, value, attention_mask=attention_mask, past_len=past_len)
        else:
            out = self._eager(query, key, value, attention_mask=attention_mask)
        out = out.transpose(1, 2).contiguous().reshape(batch, q_len, -1)
        return self.o_proj(out), None, past_key_value

    def _eager(self, query: Tensor, key: Tensor, value: Tensor, *, attention_mask: Tensor | None) -> Tensor:
        weights = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            weights = weights + attention_mask[:, :, :, : key.shape[-2]]
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        weights = F.dropout(weights, p=self.attention_dropout, training=self.training)
        return torch.matmul(weights, value)

    def _sdpa(
        self, query: Tensor, key: Tensor, value: Tensor, *, attention_mask: Tensor | None, past_len: int
    ) -> Tensor:
        # is_causal aligns the mask top-left: right for a fresh prefill (past 0) and needless for one new token.
        # A multi-token chunk after a non-empty cache needs the explicit mask (bottom-right alignment).
        q_len = query.shape[2]
        is_causal = q_len > 1 and past_len == 0
        mask = attention_mask if (q_len > 1 and past_len > 0) else None
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=is_causal)


class DeepseekV2DecoderLayer(nn.Module):
    """Pre-norm layer: ``h += attn(norm(h)); h += mlp(norm(h))``; MLP is dense before ``first_k_dense_replace``."""

    def __init__(self, config: DeepseekOCRConfig, layer_idx: int, attn_implementation: str = "eager") -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.self_attn = LlamaAttention(config, layer_idx, attn_implementation)
        self.mlp: DeepseekV2MoE | DeepseekV2MLP = (
            DeepseekV2MoE(config, layer_idx) if config.is_moe_layer(layer_idx) else DeepseekV2MLP(config)
        )
        self.input_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: Tensor,
        *,
        attention_mask: Tensor | None,
        position_ids: Tensor,
        past_key_value: KVCache,
        routing: ExpertRouting | None = None,
    ) -> tuple[Tensor, KVCache]:
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _, cache = self.self_attn(
            hidden_states, attention_mask=attention_mask, position_ids=position_ids, past_key_value=past_key_value
        )
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        if isinstance(self.mlp, DeepseekV2MoE):
            hidden_states = self.mlp(hidden_states, routing)
        else:
            hidden_states = self.mlp(hidden_states)
        return residual + hidden_states, cache
