"""Memory: exact weights, KV counted once at its final length, peak as a max, capacity and max batch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf import (
    MemoryFootprint,
    capacity_check,
    final_cache_tokens,
    kv_bytes_per_token,
    kv_bytes_per_token_for,
    kv_cache_bytes,
    peak_activation_bytes,
    weight_bytes,
)

BASE = DeepseekOCRConfig.base()


def test_weights_exact_for_the_base_model() -> None:
    assert weight_bytes(P=3_336_106_240, b=2) == 6_672_212_480  # checkpoint index total_size, bf16


def test_kv_bytes_per_token() -> None:
    assert kv_bytes_per_token(L=12, H_kv=10, D_h=128, b=2) == 61_440  # 12 layers x (K, V) x 10 heads x 128 x 2 B
    assert kv_bytes_per_token_for(BASE) == 2 * 12 * 10 * 128 * 2
    assert kv_bytes_per_token_for(BASE, dtype="fp8") == 30_720


def test_kv_counted_once_at_final_length() -> None:
    S, N = 703, 512
    assert final_cache_tokens(S=S, N=N) == 703 + 512 - 1
    kv = kv_cache_bytes(L=12, H_kv=10, D_h=128, b=2, S=S, N=N)
    assert kv == 61_440 * (703 + 511)  # 74,588,160 B
    prefill_plus_decode_twice = 61_440 * S + 61_440 * (S + N - 1)
    assert kv < prefill_plus_decode_twice
    assert kv_cache_bytes(L=12, H_kv=10, D_h=128, b=2, S=S, N=1) == 43_192_320  # model-facts §3.4: S=703


@given(S=st.integers(1, 10_000), N=st.integers(1, 10_000), B=st.integers(1, 64))
def test_kv_linear_in_batch_and_cache_length(S: int, N: int, B: int) -> None:
    kv = kv_cache_bytes(L=12, H_kv=10, D_h=128, b=2, S=S, N=N, B=B)
    assert kv == 61_440 * (S + N - 1) * B


def test_peak_is_a_max_not_a_sum() -> None:
    assert peak_activation_bytes([10, 30, 20]) == 30
    assert peak_activation_bytes([]) == 0


def test_capacity_check_and_max_batch() -> None:
    device = get_device("rtx-4090")  # 24e9 B
    footprint = MemoryFootprint(
        weights_bytes=6_672_212_480, kv_cache_bytes=2 * 74_588_160, peak_activation_bytes=2 * 500_000_000, batch_size=2
    )
    check = capacity_check(footprint, device)
    assert check.required_bytes == 6_672_212_480 + 149_176_320 + 1_000_000_000
    assert check.fits
    per_seq = 74_588_160 + 500_000_000
    assert check.max_batch == (24_000_000_000 - 6_672_212_480) // per_seq  # 30
    assert check.headroom_bytes == 24_000_000_000 - check.required_bytes


def test_does_not_fit_when_weights_exceed_capacity() -> None:
    footprint = MemoryFootprint(weights_bytes=30 * 10**9, kv_cache_bytes=0, peak_activation_bytes=0)
    check = capacity_check(footprint, get_device("rtx-4090"))
    assert not check.fits
    assert check.max_batch == 0


def test_bad_cache_length() -> None:
    with pytest.raises(ValueError, match="N >= 1"):
        final_cache_tokens(S=10, N=0)
