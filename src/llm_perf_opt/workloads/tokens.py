"""Image-token counts and prefill length (model-facts §3.2).

Symbols: ``R`` a view side (px), ``p`` the SAM patch size (16), ``d`` the SAM ``net_2``/``net_3`` spatial
downsampling (4), ``n`` the token-grid side of one view, ``i``/``j`` the crop grid (cols/rows).
"""

from __future__ import annotations

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.workloads.modes import ResolutionMode

__all__ = [
    "global_view_tokens",
    "image_tokens",
    "local_view_tokens",
    "mode_image_tokens",
    "prefill_seq_len",
    "token_geometry",
    "view_grid_side",
]


def view_grid_side(*, R: int, p: int = 16, d: int = 4) -> int:
    """Token-grid side of one view: ``n = ceil(floor(R/p) / d)``.

    SAM's stride-``p`` patch conv gives ``floor(R/p)`` patches a side; ``net_2`` and ``net_3`` (3x3, stride 2,
    padding 1) each halve it rounding up.  Equals docs/model-facts.md's ``ceil((R/16)/4)`` for every ``R`` that is a
    multiple of ``p`` (all upstream modes): 512 -> 8, 640 -> 10, 1024 -> 16, 1280 -> 20.
    """
    return -(-(R // p) // d)


def global_view_tokens(*, n_b: int) -> int:
    """Global view: ``n_b`` rows of ``n_b`` patches plus one newline each, then one view separator:
    ``n_b*(n_b + 1) + 1`` (273 at ``n_b = 16``)."""
    return n_b * (n_b + 1) + 1


def local_view_tokens(*, n_q: int, i: int, j: int) -> int:
    """Local crops re-tiled into one grid: ``(n_q*j)`` rows of ``(n_q*i)`` patches plus a newline each:
    ``(n_q*j)*(n_q*i + 1)``; 0 when ``i*j <= 1`` (no local crops)."""
    if i * j <= 1:
        return 0
    return (n_q * j) * (n_q * i + 1)


def image_tokens(*, mode: ResolutionMode, grid: tuple[int, int], p: int = 16, d: int = 4) -> int:
    """``N_img`` for one page: global view tokens plus local crop tokens (model-facts §3.2).

    crop_mode: ``n_b(n_b+1) + 1 + (n_q*j)(n_q*i + 1)`` with ``n_b`` from ``base_size`` and ``n_q`` from
    ``image_size`` (Gundam: ``273 + 100*i*j + 10*j``, or 273 without crops).  No crop_mode: one view at
    ``image_size``, ``n_q(n_q+1) + 1`` (tiny 73, small 111, base 273, large 421).
    """
    n_g = view_grid_side(R=mode.global_view_size, p=p, d=d)
    total = global_view_tokens(n_b=n_g)
    if mode.crop_mode:
        cols, rows = grid
        total += local_view_tokens(n_q=view_grid_side(R=mode.image_size, p=p, d=d), i=cols, j=rows)
    return total


def mode_image_tokens(mode: ResolutionMode, grid: tuple[int, int], config: DeepseekOCRConfig | None = None) -> int:
    """:func:`image_tokens` with ``p`` and ``d`` taken from ``config`` (``sam.patch_size``, ``downsample_ratio``;
    default: the base config)."""
    p, d = token_geometry(config)
    return image_tokens(mode=mode, grid=grid, p=p, d=d)


def token_geometry(config: DeepseekOCRConfig | None = None) -> tuple[int, int]:
    """``(p, d)``: the SAM patch size and downsampling ratio of ``config`` (default: the base config, 16 and 4)."""
    cfg = config if config is not None else DeepseekOCRConfig.base()
    return cfg.sam.patch_size, cfg.downsample_ratio


def prefill_seq_len(*, N_img: int, T_prompt: int) -> int:
    """Prefill length ``S = 1 (BOS) + N_img + T_prompt`` for one page (model-facts §3.2; 1 + 693 + 9 = 703)."""
    return 1 + N_img + T_prompt
