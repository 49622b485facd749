"""Image-token counts (model-facts §3.2) and the worked examples §3.5 / §3.6."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.config import DeepseekOCRConfig, SamConfig
from llm_perf_opt.workloads import MODES, Workload, crop_grid
from llm_perf_opt.workloads.tokens import (
    global_view_tokens,
    image_tokens,
    local_view_tokens,
    mode_image_tokens,
    prefill_seq_len,
    view_grid_side,
)


@pytest.mark.parametrize(("R", "n"), [(512, 8), (640, 10), (1024, 16), (1280, 20)])
def test_view_grid_side(R: int, n: int) -> None:
    assert view_grid_side(R=R) == n == R // 16 // 4


def test_view_grid_side_rounds_up_like_the_stride_2_convs() -> None:
    # 1000 px: 62 patches -> 31 -> 16 (two 3x3 stride-2 pad-1 convs round up)
    assert view_grid_side(R=1000) == 16


@pytest.mark.parametrize(
    ("mode", "tokens"),
    [
        ("tiny", 8 * 9 + 1),  # 73
        ("small", 10 * 11 + 1),  # 111
        ("base", 16 * 17 + 1),  # 273
        ("large", 20 * 21 + 1),  # 421
    ],
)
def test_no_crop_modes(mode: str, tokens: int) -> None:
    assert image_tokens(mode=MODES[mode], grid=(1, 1)) == tokens


def test_gundam_without_crops_is_the_global_view() -> None:
    assert image_tokens(mode=MODES["gundam"], grid=(1, 1)) == 16 * 17 + 1  # 273


@pytest.mark.parametrize(
    ("grid", "tokens"),
    [
        ((2, 2), 273 + 20 * 21),  # 693
        ((3, 3), 273 + 30 * 31),  # 1203
        ((2, 3), 273 + 30 * 21),  # 903
        ((3, 2), 273 + 20 * 31),  # 893
        ((4, 2), 273 + 20 * 41),  # 1093
        ((3, 1), 273 + 10 * 31),  # 583
        ((1, 3), 273 + 30 * 11),  # 603
    ],
)
def test_gundam_facts_table_tokens(grid: tuple[int, int], tokens: int) -> None:
    assert image_tokens(mode=MODES["gundam"], grid=grid) == tokens


def test_gundam_m_tokens() -> None:
    # global 1280 -> 20*21+1 = 421; crops 1024 -> n_q = 16; 2x3: (16*3)*(16*2+1) = 48*33 = 1584
    assert image_tokens(mode=MODES["gundam-m"], grid=(2, 3)) == 421 + 48 * 33


def test_parts() -> None:
    assert global_view_tokens(n_b=16) == 273
    assert local_view_tokens(n_q=10, i=2, j=2) == 420
    assert local_view_tokens(n_q=10, i=1, j=1) == 0
    assert prefill_seq_len(N_img=693, T_prompt=9) == 703


def test_config_supplies_patch_and_downsample() -> None:
    base = DeepseekOCRConfig.base()
    assert mode_image_tokens(MODES["base"], (1, 1), base) == 273
    coarse = attrs.evolve(base, sam=SamConfig(patch_size=32), downsample_ratio=2)
    # 1024/32 = 32 patches, /2 -> 16: same 273; a downsample of 8 instead gives 4*5+1
    assert mode_image_tokens(MODES["base"], (1, 1), coarse) == 273
    assert mode_image_tokens(MODES["base"], (1, 1), attrs.evolve(base, downsample_ratio=8)) == 8 * 9 + 1
    assert Workload.create(mode="base", page=(1024, 1024), config=attrs.evolve(base, downsample_ratio=8)).seq_len == 83


def test_example_a_base_1024() -> None:
    # model-facts §3.5: 273 image tokens, S = 1 + 273 + 9 = 283
    w = Workload.create(mode="base", page=(1024, 1024))
    assert (w.image_tokens, w.seq_len, w.grid, w.num_crops) == (273, 1 + 273 + 9, (1, 1), 0)


def test_example_b_gundam_2x2() -> None:
    # model-facts §3.6: global 16*17+1 = 273, local (10*2)*(10*2+1) = 420, N_img = 693, S = 1 + 693 + 9 = 703
    w = Workload.create(mode="gundam", page=(1024, 1024))
    assert w.grid == (2, 2) and w.num_crops == 4
    assert (w.global_tokens, w.local_tokens) == (273, 20 * 21)
    assert (w.image_tokens, w.seq_len) == (693, 703)
    assert (w.global_view_size, w.crop_size, w.global_grid_side, w.crop_grid_side) == (1024, 640, 16, 10)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20_000), st.integers(1, 20_000), st.integers(0, 64))
def test_gundam_tokens_follow_grid(width: int, height: int, prompt: int) -> None:
    w = Workload.create(mode="gundam", page=(width, height), prompt_tokens=prompt)
    i, j = crop_grid(width, height)
    assert w.grid == (i, j)
    if width <= 640 and height <= 640:
        assert (w.num_crops, w.image_tokens) == (0, 273)
    else:
        assert w.num_crops == i * j
        assert w.image_tokens == 273 + 100 * i * j + 10 * j
    assert w.image_tokens == w.global_tokens + w.local_tokens
    assert w.seq_len == 1 + w.image_tokens + prompt


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(MODES)), st.integers(1, 20_000), st.integers(1, 20_000))
def test_every_mode_consistent(name: str, width: int, height: int) -> None:
    w = Workload.create(mode=name, page=(width, height))
    mode = MODES[name]
    if not mode.crop_mode:
        assert (w.grid, w.num_crops, w.local_tokens) == ((1, 1), 0, 0)
        n = mode.image_size // 64
        assert w.image_tokens == n * (n + 1) + 1  # independent of the page
    else:
        n_q = mode.image_size // 64
        i, j = w.grid
        assert w.local_tokens == (0 if i * j == 1 else n_q * n_q * i * j + n_q * j)
    assert w.seq_len == 1 + w.image_tokens + 9
