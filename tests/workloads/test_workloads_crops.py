"""The crop rule, row by row against model-facts §3.1, plus its tie rule and invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.workloads.crops import candidate_grids, choose_grid, crop_grid

# model-facts §3.1 "Worked grid choices" (upstream dynamic_preprocess run there)
FACTS_TABLE = [
    ((640, 640), (1, 1)),
    ((500, 640), (1, 1)),
    ((700, 700), (2, 2)),
    ((1024, 1024), (2, 2)),
    ((1358, 1358), (3, 3)),
    ((1400, 1400), (3, 3)),
    ((1000, 1414), (2, 3)),
    ((1240, 1754), (2, 3)),  # A4 150 dpi
    ((2480, 3508), (2, 3)),  # A4 300 dpi
    ((2550, 3300), (2, 3)),  # Letter 300 dpi
    ((800, 600), (3, 2)),
    ((1920, 1080), (4, 2)),
    ((3000, 1000), (3, 1)),
    ((2000, 600), (3, 1)),
    ((600, 2000), (1, 3)),
]


@pytest.mark.parametrize(("page", "grid"), FACTS_TABLE)
def test_facts_table(page: tuple[int, int], grid: tuple[int, int]) -> None:
    assert crop_grid(*page) == grid


def test_square_tie_rule_boundary() -> None:
    # 2x2 and 3x3 tie on aspect 1; 3x3 wins only if W*H > 0.5 * 640**2 * 9 = 1,843,200
    assert 1357 * 1357 == 1_841_449 and 1358 * 1358 == 1_844_164
    assert crop_grid(1357, 1357) == (2, 2)
    assert crop_grid(1358, 1358) == (3, 3)


def test_wide_tie_rule_boundary() -> None:
    # 2x1 and 4x2 tie on aspect 2; 4x2 wins only if W*H > 0.5 * 640**2 * 8 = 1,638,400
    assert 1810 * 905 == 1_638_050 and 1812 * 906 == 1_641_672
    assert crop_grid(1810, 905) == (2, 1)
    assert crop_grid(1812, 906) == (4, 2)


def test_one_side_over_crop_size_is_cropped() -> None:
    assert crop_grid(641, 100) == (6, 1)  # aspect 6.41: 6/1 is the closest ratio with at most 9 crops
    assert crop_grid(700, 300) == (2, 1)  # aspect 2.33: 2 (diff .33) beats 3 (diff .67)


def test_gundam_m_uses_its_crop_size() -> None:
    assert crop_grid(1024, 1024, image_size=1024) == (1, 1)
    assert crop_grid(1025, 1025, image_size=1024) == (2, 2)
    assert crop_grid(2480, 3508, image_size=1024) == (2, 3)


def test_candidates_sorted_by_count() -> None:
    grids = candidate_grids()
    assert len(grids) == 2 + 2 + 3 + 2 + 4 + 2 + 4 + 3  # divisor pairs of 2..9
    counts = [i * j for i, j in grids]
    assert counts == sorted(counts) and min(counts) == 2 and max(counts) == 9


def test_max_num_limits_candidates() -> None:
    assert crop_grid(1920, 1080, max_num=6) == (2, 1)  # vLLM's MAX_CROPS 6: 4x2 is out; aspect 1.78 is closest to 2/1
    assert all(i * j <= 6 for i, j in candidate_grids(max_num=6))


pages = st.tuples(st.integers(1, 6000), st.integers(1, 6000))


@settings(max_examples=300, deadline=None)
@given(pages)
def test_grid_invariants(page: tuple[int, int]) -> None:
    w, h = page
    cols, rows = crop_grid(w, h)
    if w <= 640 and h <= 640:
        assert (cols, rows) == (1, 1)
        return
    assert 2 <= cols * rows <= 9
    best = min(abs(w / h - i / j) for i, j in candidate_grids())
    assert abs(w / h - cols / rows) == best  # closest aspect ratio


@settings(max_examples=300, deadline=None)
@given(pages)
def test_order_within_equal_count_does_not_matter(page: tuple[int, int]) -> None:
    w, h = page
    forward = candidate_grids()
    reverse = tuple(sorted(forward, key=lambda g: (g[0] * g[1], -g[0])))
    assert choose_grid(w, h, image_size=640, candidates=forward) == choose_grid(
        w, h, image_size=640, candidates=reverse
    )


@pytest.mark.parametrize("grid", [(1, 1), *candidate_grids()])
@pytest.mark.parametrize("side", [640, 1024])
def test_exact_multiple_page_maps_back_to_its_grid(grid: tuple[int, int], side: int) -> None:
    assert crop_grid(side * grid[0], side * grid[1], image_size=side) == grid
