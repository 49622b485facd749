"""Closed-form iteration timers for the serving tests (the runtime kernel models time real runs)."""

from __future__ import annotations

import pytest
from attrs import define, field

from llm_perf_opt.perf.iteration import BatchComposition


@define(kw_only=True)
class LinearTimer:
    """``t = base + per_token * tokens + per_key * decode keys + per_page * vision pages``; records every batch."""

    base_s: float = 0.010
    per_token_s: float = 1e-4
    per_key_s: float = 1e-7
    per_page_s: float = 0.050
    seen: list[BatchComposition] = field(factory=list)

    def iteration_s(self, batch: BatchComposition) -> float:
        self.seen.append(batch)
        pages = sum(chunk.vision_pages for chunk in batch.prefill)
        return (
            self.base_s
            + self.per_token_s * batch.num_tokens
            + self.per_key_s * sum(batch.decode_context)
            + self.per_page_s * pages
        )


@pytest.fixture
def linear_timer() -> type[LinearTimer]:
    """The closed-form timer class (call it for a fresh timer)."""
    return LinearTimer
