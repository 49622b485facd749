"""The dynamic crop rule of DeepSeek-OCR's host preprocessing (model-facts §3.1).

Written from docs/model-facts.md's description:

1. A page whose sides are both ``<= image_size`` gets no local crops: grid ``(1, 1)``.
2. Otherwise the candidates are every grid ``(i, j)`` (``i`` columns, ``j`` rows) with ``min_num <= i*j <= max_num``,
   visited in increasing ``i*j``.
3. The winner is the candidate whose ``i/j`` is closest to the page's ``W/H``.  A later candidate whose distance
   *equals* the best so far replaces it only if the page area exceeds half the area of that candidate's crops:
   ``W*H > 0.5 * image_size**2 * i*j``.

Distances are compared as Python floats (``abs(W/H - i/j)``), as upstream does, so a tie is a tie exactly when
upstream sees one.  Within one ``i*j`` the visiting order never changes the result (two grids of equal size that tie
are always beaten by a third grid), which ``tests/workloads/test_crops.py`` checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

__all__ = ["candidate_grids", "choose_grid", "crop_grid"]


@cache
def candidate_grids(*, min_num: int = 2, max_num: int = 9) -> tuple[tuple[int, int], ...]:
    """Every ``(cols, rows)`` with ``min_num <= cols*rows <= max_num``, ordered by ``cols*rows`` then ``cols``."""
    grids = [(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num]
    return tuple(sorted(grids, key=lambda grid: (grid[0] * grid[1], grid[0])))


def choose_grid(width: int, height: int, *, image_size: int, candidates: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Step 3 of the rule over ``candidates`` in the given order (closest aspect ratio, then the area tie rule)."""
    aspect = width / height
    area = width * height
    best = (1, 1)
    best_diff = float("inf")
    for cols, rows in candidates:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and 2 * area > image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def crop_grid(width: int, height: int, *, image_size: int = 640, min_num: int = 2, max_num: int = 9) -> tuple[int, int]:
    """Crop grid ``(cols i, rows j)`` for a ``width`` x ``height`` page (px), model-facts §3.1.

    ``(1, 1)`` means no local crops (both sides ``<= image_size``); any other grid cuts the page, resized to
    ``(image_size*i, image_size*j)``, into ``i*j`` crops of ``image_size`` x ``image_size``, row-major.
    Leaves out the resize and the cutting themselves (pixels do not change the counts).
    """
    if width <= image_size and height <= image_size:
        return (1, 1)
    return choose_grid(
        width, height, image_size=image_size, candidates=candidate_grids(min_num=min_num, max_num=max_num)
    )
