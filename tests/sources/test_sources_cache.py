"""KV cache: preallocated buffers, appends write only the new positions, views share the buffers."""

from __future__ import annotations

import pytest
import torch

from llm_perf_opt.errors import TraceError
from llm_perf_opt.sources.deepseek_ocr_v1 import KVCache
from llm_perf_opt.sources.deepseek_ocr_v1.cache import cache_pass, decode_pass


def _cache(max_len: int = 6) -> KVCache:
    return KVCache(
        num_layers=2, batch_size=1, num_kv_heads=2, head_dim=4, max_len=max_len, dtype=torch.float32, device="cpu"
    )


def test_buffers_are_preallocated_per_layer() -> None:
    cache = _cache()
    assert [t.shape for t in cache.buffers()] == [(1, 2, 6, 4)] * 4  # K0, V0, K1, V1
    assert cache.nbytes() == 2 * 2 * 1 * 2 * 6 * 4 * 4  # layers x (K, V) x B x H x L x D x fp32
    assert cache.seq_length(0) == cache.seq_length(1) == 0


def test_update_writes_only_the_new_positions_and_returns_views() -> None:
    cache = _cache()
    first = torch.ones(1, 2, 4, 4)
    key, value = cache.update(0, first, 2 * first)
    assert key.shape == value.shape == (1, 2, 4, 4)
    assert key._base is cache.keys[0] and value._base is cache.values[0]
    key, value = cache.update(0, 3 * torch.ones(1, 2, 1, 4), 4 * torch.ones(1, 2, 1, 4))
    assert key.shape == (1, 2, 5, 4) and cache.seq_length(0) == 5 and cache.seq_length(1) == 0
    assert cache.keys[0][0, 0, :, 0].tolist() == [1, 1, 1, 1, 3, 0]
    assert cache.values[0][0, 0, :, 0].tolist() == [2, 2, 2, 2, 4, 0]
    assert not cache.keys[1].any()
    k, _ = cache.layer(0)
    assert k.shape == (1, 2, 5, 4) and torch.equal(k, key)


def test_meta_cache_allocates_nothing() -> None:
    cache = KVCache(
        num_layers=12, batch_size=1, num_kv_heads=10, head_dim=128, max_len=703, dtype=torch.bfloat16, device="meta"
    )
    assert {t.device.type for t in cache.buffers()} == {"meta"}
    assert cache.nbytes() == 703 * 61_440  # 12 x 2 x 10 x 128 x 2 B per token (model-facts §3.4)


def test_overflow_is_one_clear_line() -> None:
    cache = _cache(max_len=3)
    with pytest.raises(TraceError, match=r"KV cache overflow in layer 1: 4 positions needed, 3 allocated"):
        cache.update(1, torch.ones(1, 2, 4, 4), torch.ones(1, 2, 4, 4))


def test_decode_pass_fills_the_past_before_the_step_and_holds_what_the_step_wrote() -> None:
    cache = _cache()
    ids = torch.zeros(1, 1, dtype=torch.long)
    new = torch.ones(1, 2, 1, 4)
    step = decode_pass(cache, cached=3, run=lambda: cache.update(0, new, new), live=[ids])
    assert cache.seq_length(0) == cache.seq_length(1) == 3  # filled when the pass is made, outside its run
    assert list(step.live) == [ids] and list(step.kv) == cache.buffers()
    out = step.run()
    held = step.kv_filled(out)
    assert [t.shape[2] for t in held] == [4, 4, 3, 3]  # K0, V0 hold the step's position; layer 1 only the past
    assert all(t._base is buffer for t, buffer in zip(held, cache.buffers(), strict=True))


def test_cache_pass_writes_nothing_before_its_run() -> None:
    cache = _cache()
    prefill = cache_pass(cache, run=lambda: None, live=[])
    assert cache.seq_length(0) == 0
    assert [t.shape[2] for t in prefill.kv_filled(None)] == [0, 0, 0, 0]
