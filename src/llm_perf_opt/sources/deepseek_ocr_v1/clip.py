"""CLIP-L encoder fed with SAM features, and the linear projector (upstream ``deepencoder.py``; model-facts §2.2-§2.3).

``VitModel(pixels, sam_features)`` uses the pixel tensor only for its batch size: the SAM output ``[B, 1024, h, w]``
replaces the patch convolution (``embeddings.patch_embedding`` exists, with its parameters, but never runs).  A CLS
vector is prepended, the 257-row position table is bicubic-resized (antialias, fp32) to ``h*w + 1`` rows when
``h != 16``, then ``pre_layrnorm`` (sic) and 24 pre-LN blocks with non-causal SDPA and quick-GELU MLPs.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llm_perf_opt.config import ClipConfig, ProjectorConfig
from llm_perf_opt.errors import ConfigError

__all__ = [
    "CLIPVisionEmbeddings",
    "MlpProjector",
    "NoTPAttention",
    "NoTPFeedForward",
    "NoTPTransformer",
    "NoTPTransformerBlock",
    "VitModel",
    "quick_gelu",
    "resize_abs_pos_clip",
]


def quick_gelu(x: Tensor) -> Tensor:
    """``x * sigmoid(1.702 x)`` (upstream: a TorchScript function; same three aten ops)."""
    return x * torch.sigmoid(1.702 * x)


def resize_abs_pos_clip(table: Tensor, num_tokens: int) -> Tensor:
    """Position table ``[1, 1 + s*s, C]`` (CLS row first) for ``num_tokens = 1 + t*t`` tokens (``get_abs_pos``).

    Unchanged when ``t == s``; otherwise the ``s x s`` grid part is resized in fp32 (bicubic, antialias) to
    ``t x t`` and the CLS row is put back in front.
    """
    channels = table.size(-1)
    rows = table.squeeze(0)
    cls_row, grid_rows = rows[:1], rows[1:]
    src = math.isqrt(rows.shape[0] - 1)
    tgt = math.isqrt(num_tokens)
    if src == tgt:
        return table
    nchw = grid_rows.view(1, src, src, channels).permute(0, 3, 1, 2).contiguous().to(torch.float32)
    resized = F.interpolate(nchw, size=(tgt, tgt), mode="bicubic", antialias=True, align_corners=False)
    resized = resized.to(table.dtype).permute(0, 2, 3, 1).view(tgt * tgt, channels)
    return torch.cat([cls_row, resized], dim=0).view(1, tgt * tgt + 1, channels)


class CLIPVisionEmbeddings(nn.Module):
    """CLS + patch tokens (here: SAM features) + resized absolute positions."""

    def __init__(self, *, hidden_size: int, image_size: int, patch_size: int, num_channels: int = 3) -> None:
        super().__init__()
        self.embed_dim = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.class_embedding = nn.Parameter(torch.empty(hidden_size))
        self.patch_embedding = nn.Conv2d(
            num_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=False
        )
        self.num_patches = (image_size // patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, hidden_size)
        # torch.tensor rather than arange: an arange on meta pulls in torch's reference decompositions (slow)
        position_ids = torch.tensor(list(range(self.num_positions)), dtype=torch.long).expand((1, -1))
        self.register_buffer("position_ids", position_ids)

    def forward(self, pixel_values: Tensor, patch_embeds: Tensor) -> Tensor:
        batch = pixel_values.shape[0]
        tokens = patch_embeds.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(batch, 1, -1)
        embeddings = torch.cat([cls, tokens], dim=1)
        table = self.position_embedding(self.position_ids)
        return embeddings + resize_abs_pos_clip(table, embeddings.size(1))


class NoTPAttention(nn.Module):
    """Fused-qkv multi-head self-attention, non-causal, one SDPA call."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, config.hidden_size * 3, bias=True)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv_proj(x).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = (part.squeeze(2) for part in torch.split(qkv, 1, dim=2))
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None)
        out = out.permute(0, 2, 1, 3).reshape(batch, length, -1)
        projected: Tensor = self.out_proj(out)
        return projected


class NoTPFeedForward(nn.Module):
    """``fc2(quick_gelu(fc1(x)))``."""

    def __init__(self, *, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=True)
        self.fc2 = nn.Linear(hidden_dim, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(quick_gelu(self.fc1(x)))
        return out


class NoTPTransformerBlock(nn.Module):
    """Pre-LN block: ``h = x + attn(ln1(x)); out = h + mlp(ln2(h))`` (attn and mlp via ``.forward``, as upstream)."""

    replay_ignores: ClassVar[tuple[str, ...]] = ("layer_id",)
    """Attributes that do not decide the block's ops (its index): blocks differing only there replay one tape."""

    def __init__(self, config: ClipConfig, layer_id: int) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.dim = config.hidden_size
        self.head_dim = config.head_dim
        self.self_attn = NoTPAttention(config)
        self.mlp = NoTPFeedForward(dim=config.hidden_size, hidden_dim=config.ffn_hidden_size)
        self.layer_id = layer_id
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, x: Tensor) -> Tensor:
        # Upstream calls ``.forward`` directly on self_attn and mlp, so their module hooks never fire (their
        # Linear children's do); kept as is so that a hook-based trace sees the same calls as upstream's.
        h = x + self.self_attn.forward(self.layer_norm1(x))
        return h + self.mlp.forward(self.layer_norm2(h))


class NoTPTransformer(nn.Module):
    """The block stack (``layers``)."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.num_layers = config.num_layers
        self.layers = nn.ModuleList(NoTPTransformerBlock(config, i + 1) for i in range(config.num_layers))

    def forward(self, hidden_states: Tensor) -> Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class VitModel(nn.Module):
    """CLIP-L as DeepSeek-OCR uses it: ``[B, 1 + h*w, hidden]`` out, CLS first, no final LayerNorm."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(
            hidden_size=config.hidden_size, image_size=config.image_size, patch_size=config.patch_size
        )
        self.transformer = NoTPTransformer(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, x: Tensor, patch_embeds: Tensor) -> Tensor:
        hidden = self.pre_layrnorm(self.embeddings(x, patch_embeds))
        out: Tensor = self.transformer(hidden)
        return out


class MlpProjector(nn.Module):
    """Projector; only the ``linear`` type is on DeepSeek-OCR's executed path: ``layers = Linear(2048, 1280)``."""

    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        if config.projector_type != "linear":
            raise ConfigError(f"projector_type {config.projector_type!r} is not supported; expected 'linear'")
        self.cfg = config
        self.layers = nn.Linear(config.input_dim, config.n_embed)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.layers(x)
        return out
