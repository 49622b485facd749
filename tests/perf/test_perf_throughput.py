"""Throughput of a batch and MoE expert coverage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.perf import StageTimes, moe_expert_weight_bytes, throughput
from llm_perf_opt.perf.throughput import ExpectedCoverageRouting
from llm_perf_opt.workloads.routing import RoutingModel, expected_distinct_experts

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


@given(T=st.integers(0, 2_000), E=st.integers(1, 128), layer=st.integers(0, 20), data=st.data())
def test_expected_coverage_routing_is_a_valid_assignment(T: int, E: int, layer: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, E))
    counts = ExpectedCoverageRouting().expert_counts(layer_idx=layer, num_tokens=T, num_experts=E, top_k=k)
    assert len(counts) == E
    assert sum(counts) == T * k
    assert all(0 <= c <= T for c in counts)
    if T:
        touched = sum(1 for c in counts if c)
        assert touched == min(max(round(expected_distinct_experts(E=E, k=k, T=T)), k), E, T * k)


def test_expected_coverage_goldens() -> None:
    routing = ExpectedCoverageRouting()
    touched = [
        sum(1 for c in routing.expert_counts(layer_idx=1, num_tokens=T, num_experts=64, top_k=6) if c)
        for T in (1, 8, 64)
    ]
    assert touched == [6, 35, 64]  # 64*(1-(58/64)^T): 6, 34.9, 63.9
    assert routing != RoutingModel.balanced()
    assert "expected coverage" in routing.describe()
