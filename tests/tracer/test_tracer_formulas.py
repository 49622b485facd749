"""Pure FLOP formulas against hand arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.tracer.ops.formulas import (
    causal_score_entries,
    conv_flops,
    grouped_mm_flops,
    interpolate_taps,
    matmul_flops,
    sdpa_flops,
    sort_flops,
)


def test_matmul_flops() -> None:
    assert matmul_flops(m=703, k=1280, n=129280) == 2 * 703 * 1280 * 129280  # lm_head at S=703
    assert matmul_flops(b=10, m=703, k=128, n=703) == 2 * 10 * 703 * 128 * 703  # QK^T, 10 heads


def test_conv_flops_patch_embed() -> None:
    # SAM patch conv on one 1024 view: 64x64 outputs, 768 out channels, 3x16x16 inputs each
    assert conv_flops(N=1, C_out=768, C_in_per_group=3, kernel=(16, 16), out_spatial=(64, 64)) == (
        2 * 64 * 64 * 768 * 768
    )


def test_grouped_mm_flops() -> None:
    assert grouped_mm_flops(T=4218, K=1280, N=896) == 2 * 4218 * 1280 * 896


def test_causal_entries() -> None:
    assert causal_score_entries(q=703, k=703) == 703 * 704 // 2  # square: lower triangle with diagonal
    assert causal_score_entries(q=1, k=704) == 704  # one decode query sees every key
    assert causal_score_entries(q=3, k=10) == 8 + 9 + 10  # the last 3 queries of 10 keys
    with pytest.raises(ValueError, match="more queries"):
        causal_score_entries(q=5, k=4)


@given(q=st.integers(1, 200), extra=st.integers(0, 200))
def test_causal_entries_sum_per_query(q: int, extra: int) -> None:
    k = q + extra
    assert causal_score_entries(q=q, k=k) == sum(k - q + 1 + j for j in range(q))


def test_sdpa_flops_dense_and_causal() -> None:
    dense = sdpa_flops(BH=10, L=703, S=703, E=128, Ev=128)
    assert dense == 4 * 10 * 703 * 703 * 128  # model-facts §3.7: 4*10*q*k*128
    causal = sdpa_flops(BH=10, L=703, S=703, E=128, Ev=128, entries=causal_score_entries(q=703, k=703))
    assert causal == 4 * 10 * (703 * 704 // 2) * 128


def test_sort_flops() -> None:
    assert sort_flops(numel=64 * 10, n=64) == 640 * 6  # log2 64 = 6
    assert sort_flops(numel=5, n=1) == 0


def test_interpolate_taps() -> None:
    assert interpolate_taps(taps_1d=4, in_sizes=(16, 16), out_sizes=(10, 10), antialias=False) == 16
    # antialias widens the support by the downscale factor, rounded up: ceil(4 * 1.6) = 7 per dim
    assert interpolate_taps(taps_1d=4, in_sizes=(16, 16), out_sizes=(10, 10), antialias=True) == 7 * 7
    assert interpolate_taps(taps_1d=2, in_sizes=(27,), out_sizes=(79,), antialias=True) == 2  # upsampling
