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
from llm_perf_opt.perf.memory import (
    CUDA_CONTEXT,
    RUNTIME_BUDGETS,
    MiB,
    ProcessOverhead,
    allocator_block_bytes,
    allocator_segment_bytes,
    kv_pool_bytes,
    kv_pool_tokens,
    largest_batch,
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


def test_allocator_rounds_requests_to_512_byte_blocks_and_picks_segments() -> None:
    assert allocator_block_bytes(n=1) == 512
    assert allocator_block_bytes(n=512) == 512
    assert allocator_block_bytes(n=40_000) == 40_448  # 79 blocks; PyTorch's memory snapshot shows the same size
    assert allocator_segment_bytes(n=40_000) == 2 * MiB  # small pool
    assert allocator_segment_bytes(n=MiB + 1) == 20 * MiB  # 1-10 MiB share a 20 MiB segment
    assert allocator_segment_bytes(n=10 * MiB + 1) == 12 * MiB  # own segment, rounded up to 2 MiB


def test_largest_batch_solves_the_budget_inequality() -> None:
    # tensors only: (100 - 10) // 20 = 4 sequences
    assert largest_batch(M=100, W=10, m_seq=20) == 4
    # with overhead: 1000 - 100 - 50 - 1.1 * 200 = 630 left; each sequence takes 1.1 * 100 = 110 -> 5
    overhead = ProcessOverhead(context_bytes=100, workspace_bytes=50, fragmentation_fraction=0.1)
    assert largest_batch(M=1000, W=200, m_seq=100, overhead=overhead) == 5
    b = 5
    assert 200 + b * 100 + overhead.bytes_for(allocated=200 + b * 100) <= 1000
    assert 200 + (b + 1) * 100 + overhead.bytes_for(allocated=200 + (b + 1) * 100) > 1000
    assert largest_batch(M=100, W=200, m_seq=1) == 0  # the weights alone do not fit


def test_default_overhead_states_its_parts() -> None:
    o = ProcessOverhead()
    assert o.context_bytes == CUDA_CONTEXT.nbytes == 426 * MiB
    assert o.workspace_bytes == 8_519_680 + 32 * MiB  # cuBLAS :4096:2:16:8 + cuBLASLt on Hopper
    assert "CUDA context 426 MiB" in o.describe()


def test_vllm_kv_pool_reproduces_a_published_deepseek_ocr_log() -> None:
    # vllm-project/vllm-ascend#3874: "Available memory: 51114070016" and "GPU KV cache size: 831,872 tokens" for
    # deepseek-ai/DeepSeek-OCR in bf16; the Ascend backend pages KV in 128-token blocks
    per_token = kv_bytes_per_token_for(DeepseekOCRConfig.base(), dtype="bf16")
    assert per_token == 61_440
    assert kv_pool_tokens(pool_bytes=51_114_070_016, kv_per_token=per_token, block_tokens=128) == 831_872
    assert kv_pool_bytes(M=1000, u=0.9, W=500, A=100, X=50) == 250
    assert RUNTIME_BUDGETS["vllm"].memory_utilization == 0.9 and RUNTIME_BUDGETS["vllm"].kv_block_tokens == 16
