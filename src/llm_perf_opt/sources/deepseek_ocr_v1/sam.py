"""SAM ViT-B image encoder of DeepSeek-OCR v1 (upstream ``deepencoder.py``: ``ImageEncoderViT`` and its parts).

Class names, attribute names, registration order and parameter shapes follow upstream (model-facts §2.1), so
``named_modules()`` paths match.  The forward runs the same tensor ops in the same order wherever they matter for
costs: bicubic (antialias) resize of the absolute position table when the patch grid differs from 64x64, linear
interpolation of a rel-pos table whose length does not fit the q/k grid, the two rel-pos einsums, the additive
``[B, heads, HW, HW]`` bias handed to ``F.scaled_dot_product_attention`` as ``attn_mask``, windows padded to a
multiple of 14 (qkv, attention and proj on padded windows, the MLP on the unpadded grid), then neck, net_2, net_3.
Every branch depends on shapes only, so the module runs unchanged on the meta device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llm_perf_opt.config import SamConfig

__all__ = [
    "Attention",
    "Block",
    "ImageEncoderViT",
    "LayerNorm2d",
    "MLPBlock",
    "PatchEmbed",
    "resize_abs_pos_sam",
    "resize_rel_pos",
]


def resize_abs_pos_sam(table: Tensor, side: int) -> Tensor:
    """Absolute position table ``[1, s, s, C]`` for a ``side x side`` patch grid (upstream ``get_abs_pos_sam``).

    Unchanged when ``s == side``; otherwise resized in fp32 with bicubic, antialiased interpolation and cast back.
    """
    if table.shape[1] == side:
        return table
    nchw = table.permute(0, 3, 1, 2).to(torch.float32)
    resized = F.interpolate(nchw, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    return resized.to(table.dtype).permute(0, 2, 3, 1)


def resize_rel_pos(q_size: int, k_size: int, table: Tensor) -> Tensor:
    """Relative-position rows for every (query, key) offset: ``[q_size, k_size, C]`` (upstream ``get_rel_pos``).

    A table whose length differs from ``2 * max(q, k) - 1`` is linearly interpolated (in fp32) to that length.
    """
    span = 2 * max(q_size, k_size) - 1
    if table.shape[0] == span:
        rows = table
    else:
        as_ncl = table.to(torch.float32).reshape(1, table.shape[0], -1).permute(0, 2, 1)
        stretched = F.interpolate(as_ncl, size=span, mode="linear").to(table.dtype)
        rows = stretched.reshape(-1, span).permute(1, 0)
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=table.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=table.device)[None, :] * k_scale
    offsets = (q_coords - k_coords) + (k_size - 1) * k_scale
    return rows[offsets.long()]


def decomposed_rel_pos(q: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """MViTv2 decomposed relative-position terms for queries ``q [B*heads, H*W, C]`` on an ``H x W`` grid.

    Returns ``rel_h [B*heads, HW, H, 1]`` and ``rel_w [B*heads, HW, 1, W]``; their broadcast sum is the bias.
    Two einsums: ``q . Rh`` over the height offsets and ``q . Rw`` over the width offsets.
    """
    height, width = grid
    r_h = resize_rel_pos(height, height, rel_pos_h)
    r_w = resize_rel_pos(width, width, rel_pos_w)
    batch, _, channels = q.shape
    q_grid = q.reshape(batch, height, width, channels)
    term_h = torch.einsum("bhwc,hkc->bhwk", q_grid, r_h)
    term_w = torch.einsum("bhwc,wkc->bhwk", q_grid, r_w)
    term_h = term_h.unsqueeze(-1).reshape(batch, height * width, height, 1)
    term_w = term_w.unsqueeze(-2).reshape(batch, height * width, 1, width)
    return term_h, term_w


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """Cut ``[B, H, W, C]`` into ``[B * nw, window, window, C]`` windows, zero-padding H and W up to multiples."""
    batch, height, width, channels = x.shape
    pad_h = (window - height % window) % window
    pad_w = (window - width % window) % window
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window, window, padded_w // window, window, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, channels)
    return windows, (padded_h, padded_w)


def window_unpartition(windows: Tensor, window: int, padded: tuple[int, int], grid: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: re-tile the windows and crop the padding away."""
    padded_h, padded_w = padded
    height, width = grid
    batch = windows.shape[0] // (padded_h * padded_w // window // window)
    x = windows.view(batch, padded_h // window, padded_w // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, padded_h, padded_w, -1)
    if padded_h > height or padded_w > width:
        x = x[:, :height, :width, :].contiguous()
    return x


class PatchEmbed(nn.Module):
    """Patch convolution; output in channels-last layout ``[B, H/16, W/16, C]``."""

    def __init__(self, *, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.proj(x)
        return out.permute(0, 2, 3, 1)


class MLPBlock(nn.Module):
    """``lin2(GELU(lin1(x)))`` with exact (erf) GELU."""

    def __init__(self, *, embedding_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.lin2(self.act(self.lin1(x)))
        return out


class LayerNorm2d(nn.Module):
    """Channel-wise LayerNorm on NCHW maps, written out (mean, variance, normalise, affine) as upstream does."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_channels))
        self.bias = nn.Parameter(torch.empty(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Attention(nn.Module):
    """Multi-head attention with decomposed relative positions; the rel-pos bias goes to SDPA as ``attn_mask``."""

    def __init__(self, *, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.empty(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.empty(2 * input_size[1] - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        tokens, heads = height * width, self.num_heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * heads, tokens, -1).unbind(0)
        rel_h, rel_w = decomposed_rel_pos(q, self.rel_pos_h, self.rel_pos_w, (height, width))
        q = q.view(batch, heads, tokens, -1)
        k = k.view(batch, heads, tokens, -1)
        v = v.view(batch, heads, tokens, -1)
        rel_h = rel_h.view(batch, heads, rel_h.size(1), rel_h.size(2), rel_h.size(3))
        rel_w = rel_w.view(batch, heads, rel_w.size(1), rel_w.size(2), rel_w.size(3))
        bias = (rel_h + rel_w).view(batch, heads, rel_h.size(2), rel_h.size(3) * rel_w.size(4))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.view(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
        projected: Tensor = self.proj(out)
        return projected


class Block(nn.Module):
    """Pre-LN transformer block; ``window_size > 0`` runs attention on padded windows, 0 means global attention."""

    def __init__(self, *, config: SamConfig, window_size: int) -> None:
        super().__init__()
        dim = config.embed_dim
        grid = config.img_size // config.patch_size
        side = window_size if window_size > 0 else grid
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = Attention(dim=dim, num_heads=config.num_heads, input_size=(side, side))
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = MLPBlock(embedding_dim=dim, mlp_dim=config.mlp_dim)
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            grid = (x.shape[1], x.shape[2])
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, grid)
        else:
            x = self.attn(x)
        x = shortcut + x
        mlp_out: Tensor = self.mlp(self.norm2(x))
        return x + mlp_out


class ImageEncoderViT(nn.Module):
    """SAM ViT-B: patch embed, 12 blocks (windowed except ``global_attn_indexes``), neck, net_2, net_3.

    ``[B, 3, R, R]`` pixels -> ``[B, net_3 channels, R/64, R/64]`` features (1024 -> 16x16, 640 -> 10x10).
    """

    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        grid = config.img_size // config.patch_size
        out, (mid, top) = config.out_chans, config.downsample_channels
        self.img_size = config.img_size
        self.patch_embed = PatchEmbed(
            patch_size=config.patch_size, in_chans=config.in_chans, embed_dim=config.embed_dim
        )
        self.pos_embed = nn.Parameter(torch.empty(1, grid, grid, config.embed_dim))
        self.blocks = nn.ModuleList(
            Block(config=config, window_size=0 if i in config.global_attn_indexes else config.window_size)
            for i in range(config.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(config.embed_dim, out, kernel_size=1, bias=False),
            LayerNorm2d(out, eps=config.layer_norm_eps),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out, eps=config.layer_norm_eps),
        )
        self.net_2 = nn.Conv2d(out, mid, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(mid, top, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        x = x + resize_abs_pos_sam(self.pos_embed, x.size(1))
        for block in self.blocks:
            x = block(x)
        x = self.neck(x.permute(0, 3, 1, 2))
        x2 = self.net_2(x)
        out: Tensor = self.net_3(x2.clone())
        return out
