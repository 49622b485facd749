"""Resolution modes: upstream sizes and view semantics (model-facts §3.1 item 3, §3.2)."""

from __future__ import annotations

import pytest

from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.workloads import MODES, ResolutionMode, get_mode


@pytest.mark.parametrize(
    ("name", "base", "image", "crop", "global_view", "crop_side"),
    [
        ("tiny", 512, 512, False, 512, 0),
        ("small", 640, 640, False, 640, 0),
        ("base", 1024, 1024, False, 1024, 0),
        ("large", 1280, 1280, False, 1280, 0),
        ("gundam", 1024, 640, True, 1024, 640),
        ("gundam-m", 1280, 1024, True, 1280, 1024),
    ],
)
def test_mode_sizes(name: str, base: int, image: int, crop: bool, global_view: int, crop_side: int) -> None:
    mode = get_mode(name)
    assert (mode.base_size, mode.image_size, mode.crop_mode) == (base, image, crop)
    assert mode.global_view_size == global_view
    assert mode.crop_size == crop_side


def test_no_crop_mode_views_at_image_size() -> None:
    # upstream crop_mode=False renders the single view at image_size, not base_size
    odd = ResolutionMode(name="odd", base_size=1024, image_size=640, crop_mode=False)
    assert odd.global_view_size == 640


def test_modes_are_exactly_the_six_upstream_modes() -> None:
    assert list(MODES) == ["tiny", "small", "base", "large", "gundam", "gundam-m"]
    with pytest.raises(TypeError):
        MODES["x"] = MODES["tiny"]  # type: ignore[index]


def test_unknown_mode_lists_known_modes() -> None:
    with pytest.raises(UnknownIdError) as info:
        get_mode("huge")
    assert str(info.value) == (
        "unknown resolution mode 'huge'; expected one of: base, gundam, gundam-m, large, small, tiny"
    )


@pytest.mark.parametrize("bad", [0, -640, 640.0, True])
def test_mode_sizes_must_be_positive_ints(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ResolutionMode(name="bad", base_size=bad, image_size=640, crop_mode=True)  # type: ignore[arg-type]
