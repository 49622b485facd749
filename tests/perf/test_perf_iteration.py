"""The serving iteration description: token budget and validation."""

from __future__ import annotations

import pytest

from llm_perf_opt.perf.iteration import BatchComposition, PrefillChunk


def test_num_tokens_counts_prefill_chunks_and_one_token_per_decoder() -> None:
    batch = BatchComposition(
        prefill=(PrefillChunk(new_tokens=100, vision_pages=1, vision_key="gundam"), PrefillChunk(new_tokens=7)),
        decode_context=(300, 301, 302),
    )
    assert batch.num_tokens == 100 + 7 + 3
    assert not batch.is_empty


def test_empty_iteration_and_negative_sizes() -> None:
    assert BatchComposition().is_empty
    assert not BatchComposition(prefill=(PrefillChunk(new_tokens=0, vision_pages=1),)).is_empty
    with pytest.raises(ValueError, match="new_tokens must be >= 0"):
        PrefillChunk(new_tokens=-1)
