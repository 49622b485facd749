"""DeepSeek-OCR-2 resolution modes, crop rule and token counts (torch-free).

Facts (deepseek-ai/DeepSeek-OCR-2 model card "Support-Modes"; transformers ``deepseek_ocr2`` image processor and
processor, 5.10+):

* ``dynamic`` (the default, and the only mode the model card lists): a global view padded to 1024 x 1024 plus, when
  the page's longer side exceeds 768 px, ``cols x rows`` local tiles of 768 x 768 with ``2 <= cols*rows <= 6``.
* ``single`` (``crop_to_patches=False`` in transformers): one view padded to 768 x 768, no tiles.
* Every view goes SAM (patch 16) -> two stride-2 convs (x1/4) -> Qwen2 encoder, whose learnable queries give
  ``(side/16/4)^2`` tokens: 256 for a 1024 view, 144 for a 768 tile.  One view separator follows; no newline tokens.
  ``N_img = global + 144 * tiles + 1``; ``S = 1 (BOS) + N_img + prompt tokens``.
* Tile grid: among ``(cols, rows)`` with ``2 <= cols*rows <= 6`` (ordered by ``cols*rows``, then cols, then rows) the
  one whose ``cols/rows`` is closest to ``W/H``; on an exact tie a later grid replaces the earlier one when
  ``W*H > 0.5 * 768^2 * cols*rows``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from attrs import field, frozen

from llm_perf_opt.errors import UnknownIdError, WorkloadError

__all__ = ["OCR2_MODES", "Ocr2Mode", "Ocr2Workload", "ocr2_grid", "view_tokens"]

PATCH = 16
DOWNSAMPLE = 4
TILE = 768
MIN_TILES = 2
MAX_TILES = 6


@frozen(kw_only=True)
class Ocr2Mode:
    """One resolution mode of DeepSeek-OCR-2."""

    name: str
    crop_to_patches: bool = field(metadata={"help": "local 768 px tiles when the page is larger than a tile"})
    global_size: int = field(metadata={"help": "global view side (px)"})
    tile_size: int = field(default=TILE, metadata={"help": "local tile side (px)"})

    @property
    def base_size(self) -> int:
        """The global view side (v1's ``ResolutionMode.base_size``)."""
        return self.global_size

    @property
    def image_size(self) -> int:
        """The local tile side (v1's ``ResolutionMode.image_size``)."""
        return self.tile_size

    @property
    def crop_mode(self) -> bool:
        """Whether pages larger than a tile are cut into tiles (v1's ``ResolutionMode.crop_mode``)."""
        return self.crop_to_patches


OCR2_MODES: Mapping[str, Ocr2Mode] = {
    "dynamic": Ocr2Mode(name="dynamic", crop_to_patches=True, global_size=1024),
    "single": Ocr2Mode(name="single", crop_to_patches=False, global_size=TILE),
}


def view_tokens(side_px: int) -> int:
    """Query tokens of one view: ``ceil(side / 16 / 4)^2`` (1024 -> 256, 768 -> 144)."""
    per_side = math.ceil(side_px / PATCH / DOWNSAMPLE)
    return per_side * per_side


def ocr2_grid(
    width: int, height: int, *, tile: int = TILE, min_tiles: int = MIN_TILES, max_tiles: int = MAX_TILES
) -> tuple[int, int]:
    """``(cols, rows)`` of the local tiles for a ``width x height`` page (see the module docstring)."""
    grids = sorted(
        ((c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1) if min_tiles <= c * r <= max_tiles),
        key=lambda g: g[0] * g[1],
    )
    aspect = width / height
    best, best_diff = (1, 1), math.inf
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


@frozen(kw_only=True)
class Ocr2Workload:
    """A resolved DeepSeek-OCR-2 workload: views, tiles, token counts and generation length."""

    mode: Ocr2Mode
    page: tuple[int, int] = field(metadata={"help": "page (W, H) px"})
    prompt_tokens: int = field(default=9, metadata={"help": "text tokens after the image"})
    max_new_tokens: int = field(default=1, metadata={"help": "N: prefill gives token 1, N-1 decode steps follow"})
    batch_size: int = field(default=1, metadata={"help": "pages per forward"})
    profile_id: str | None = field(default=None, metadata={"help": "workload preset it came from, unchanged"})

    @classmethod
    def create(
        cls,
        *,
        mode: str = "dynamic",
        page: tuple[int, int] = (1024, 1024),
        prompt_tokens: int = 9,
        max_new_tokens: int = 1,
        batch_size: int = 1,
        profile_id: str | None = None,
    ) -> Ocr2Workload:
        """Check and build; an unknown mode is an UnknownIdError, impossible numbers a WorkloadError."""
        if mode not in OCR2_MODES:
            raise UnknownIdError("DeepSeek-OCR-2 resolution mode", mode, OCR2_MODES)
        width, height = page
        if width <= 0 or height <= 0 or prompt_tokens < 0 or max_new_tokens < 1 or batch_size < 1:
            raise WorkloadError(
                f"DeepSeek-OCR-2 workload needs a positive page, prompt_tokens >= 0, max_new_tokens >= 1 and "
                f"batch_size >= 1; got page {width}x{height}, prompt_tokens {prompt_tokens}, max_new_tokens "
                f"{max_new_tokens}, batch_size {batch_size}"
            )
        return cls(
            mode=OCR2_MODES[mode],
            page=(width, height),
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            profile_id=profile_id,
        )

    @property
    def page_width(self) -> int:
        return self.page[0]

    @property
    def page_height(self) -> int:
        return self.page[1]

    @property
    def num_pages(self) -> int:
        """Pages per document (one; the batch holds several pages)."""
        return 1

    @property
    def grid(self) -> tuple[int, int]:
        """``(cols, rows)`` of the tiles; ``(1, 1)`` when there are none."""
        width, height = self.page
        if not self.mode.crop_to_patches or max(width, height) <= self.mode.tile_size:
            return (1, 1)
        return ocr2_grid(width, height, tile=self.mode.tile_size)

    @property
    def num_crops(self) -> int:
        width, height = self.page
        if not self.mode.crop_to_patches or max(width, height) <= self.mode.tile_size:
            return 0
        cols, rows = self.grid
        return cols * rows

    @property
    def global_view_size(self) -> int:
        return self.mode.global_size

    @property
    def crop_size(self) -> int:
        return self.mode.tile_size if self.num_crops else 0

    @property
    def global_tokens(self) -> int:
        return view_tokens(self.mode.global_size)

    @property
    def local_tokens(self) -> int:
        return view_tokens(self.mode.tile_size) * self.num_crops

    @property
    def text_only(self) -> bool:
        """Always False: a text-only DeepSeek-OCR-2 request is not traced (``--text-only`` is refused for it)."""
        return False

    @property
    def image_tokens(self) -> int:
        """``global + 144 * tiles + 1`` (the view separator)."""
        return self.global_tokens + self.local_tokens + 1

    @property
    def seq_len(self) -> int:
        """``S = 1 + N_img + prompt_tokens``."""
        return 1 + self.image_tokens + self.prompt_tokens

    @property
    def decode_steps(self) -> int:
        return self.max_new_tokens - 1

    @property
    def global_grid_side(self) -> int:
        """Query tokens per side of the global view (16 for 1024 px)."""
        return math.isqrt(self.global_tokens)

    @property
    def crop_grid_side(self) -> int:
        """Query tokens per side of a tile (12 for 768 px; 0 without tiles)."""
        return math.isqrt(view_tokens(self.mode.tile_size)) if self.num_crops else 0

    @property
    def final_kv_len(self) -> int:
        """KV length after the last decode step: ``S + N - 1``."""
        return self.seq_len + self.max_new_tokens - 1

    def cached_len_at_step(self, i: int) -> int:
        """Tokens already cached when decode step ``i`` (1-based) runs: ``S + i - 1``."""
        return self.seq_len + i - 1

    def kv_len_at_step(self, i: int) -> int:
        """Keys attended by decode step ``i``: ``S + i``."""
        return self.seq_len + i

    def describe(self) -> str:
        cols, rows = self.grid
        tiles = f"tiles {cols}x{rows} ({self.num_crops})" if self.num_crops else "no tiles (global view only)"
        return (
            f"deepseek-ocr-2 {self.mode.name} {self.page[0]}x{self.page[1]} px, {tiles}, {self.image_tokens} image + "
            f"{self.prompt_tokens} prompt tokens, S={self.seq_len}, "
            f"N={self.max_new_tokens}, batch {self.batch_size}"
        )
