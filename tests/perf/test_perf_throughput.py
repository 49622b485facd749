"""Throughput of a batch and MoE expert coverage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.perf import StageTimes, moe_expert_weight_bytes, throughput
from llm_perf_opt.workloads.routing import expected_distinct_experts

W_EXPERT = 3 * 1280 * 896 * 2  # gate, up, down of one routed expert, bf16: 6,881,280 B


def test_rates_for_a_batch() -> None:
    stages = StageTimes(prefill_s=0.5, decode_s=1.5, decode_steps=511)
    rate = throughput(stages, B=8, N=512)
    assert rate.tokens_per_s == pytest.approx(8 * 512 / 2.0)  # 2048 tokens/s
    assert rate.decode_tokens_per_s == pytest.approx(8 / (1.5 / 511))
    assert rate.pages_per_s == pytest.approx(8 / 2.0)
    assert rate.pages_per_day == pytest.approx(4.0 * 86_400)


def test_zero_time_gives_zero_rates() -> None:
    rate = throughput(StageTimes(), B=1, N=1)
    assert rate.tokens_per_s == rate.pages_per_s == rate.decode_tokens_per_s == 0.0


def test_expert_coverage_goldens() -> None:
    assert moe_expert_weight_bytes(L_moe=11, E=64, k=6, T=1, W_e=W_EXPERT) == pytest.approx(11 * 6 * W_EXPERT)
    t8 = 64 * (1 - (1 - 6 / 64) ** 8)  # about 34.9 experts
    assert moe_expert_weight_bytes(L_moe=1, E=64, k=6, T=8, W_e=W_EXPERT) == pytest.approx(t8 * W_EXPERT)
    assert expected_distinct_experts(E=64, k=6, T=64) == pytest.approx(64, abs=1.3)


@given(T=st.integers(1, 10_000), E=st.integers(1, 256), data=st.data())
def test_coverage_bounded_and_non_decreasing(T: int, E: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, E))
    now = moe_expert_weight_bytes(L_moe=1, E=E, k=k, T=T, W_e=1)
    assert min(k, E) - 1e-9 <= now <= E + 1e-9
    assert moe_expert_weight_bytes(L_moe=1, E=E, k=k, T=T + 1, W_e=1) >= now - 1e-9
