"""DeepSeek-OCR-2 modes, tile rule and token counts (torch-free module)."""

from __future__ import annotations

import pytest

from llm_perf_opt.errors import UnknownIdError, WorkloadError
from llm_perf_opt.workloads.ocr2 import Ocr2Workload, ocr2_grid, view_tokens


def test_view_tokens() -> None:
    assert view_tokens(1024) == (1024 // 16 // 4) ** 2 == 256
    assert view_tokens(768) == (768 // 16 // 4) ** 2 == 144


@pytest.mark.parametrize(
    ("page", "grid", "image_tokens"),
    [
        ((1024, 1024), (2, 2), 256 + 4 * 144 + 1),
        ((2480, 3508), (2, 3), 256 + 6 * 144 + 1),  # A4 portrait
        ((1920, 1080), (2, 1), 256 + 2 * 144 + 1),
        ((600, 2000), (1, 3), 256 + 3 * 144 + 1),
        ((700, 700), (1, 1), 256 + 0 + 1),  # longer side <= 768: no tiles
        ((3000, 1000), (3, 1), 256 + 3 * 144 + 1),
    ],
)
def test_dynamic_mode_token_counts(page: tuple[int, int], grid: tuple[int, int], image_tokens: int) -> None:
    work = Ocr2Workload.create(page=page, prompt_tokens=9, max_new_tokens=4)
    assert work.grid == grid
    assert work.image_tokens == image_tokens
    assert work.seq_len == 1 + image_tokens + 9
    assert work.decode_steps == 3


def test_single_mode_is_one_768_view() -> None:
    work = Ocr2Workload.create(mode="single", page=(2480, 3508))
    assert (work.num_crops, work.global_view_size, work.image_tokens) == (0, 768, 144 + 1)


def test_tile_rule_closest_aspect() -> None:
    assert ocr2_grid(1600, 800) == (2, 1)
    assert ocr2_grid(800, 800) == (2, 2)  # 1x1 is not a candidate; 2x2 is the only square grid
    assert ocr2_grid(900, 300) == (3, 1)


def test_tile_rule_matches_transformers() -> None:
    pil = pytest.importorskip("transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2")
    for width in range(100, 4000, 97):
        for height in range(100, 4000, 89):
            assert ocr2_grid(width, height) == tuple(pil.get_optimal_tiled_canvas((height, width), (768, 768), 2, 6))


def test_bad_workloads_are_user_errors() -> None:
    with pytest.raises(UnknownIdError, match="dynamic"):
        Ocr2Workload.create(mode="gundam")
    with pytest.raises(WorkloadError, match="max_new_tokens >= 1"):
        Ocr2Workload.create(max_new_tokens=0)


def test_describe_names_tiles_only_where_there_are_some() -> None:
    tiled = Ocr2Workload.create(page=(1024, 1024))
    assert "tiles 2x2 (4)," in tiled.describe()
    single = Ocr2Workload.create(mode="single", page=(1024, 1024))
    assert single.num_crops == 0
    assert "no tiles (global view only), 145 image" in single.describe() and "1x1" not in single.describe()
