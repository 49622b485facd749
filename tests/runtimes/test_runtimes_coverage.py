"""Expert coverage under a routing model: the balanced closed form unchanged, skew hits fewer experts."""

from __future__ import annotations

import math

import pytest

from llm_perf_opt.runtimes.coverage import (
    PROBABILITY_TOKENS,
    ExpertCoverage,
    expected_distinct_routed,
    expert_pick_probabilities,
)
from llm_perf_opt.workloads import RoutingModel, expected_distinct_experts

E, K, MOE_LAYERS = 64, 6, range(1, 12)  # DeepSeek-OCR v1: 64 routed experts, top-6, layers 1..11 are MoE


def test_uniform_probabilities_give_the_closed_form_back() -> None:
    for T in (1, 8, 64, 703):
        # E(1-(1-k/E)^T): 64 * (1 - (58/64)^8) = 34.88 at T = 8
        assert math.isclose(expected_distinct_routed(p=[K / E] * E, T=T), expected_distinct_experts(E=E, k=K, T=T))
    assert math.isclose(expected_distinct_routed(p=[K / E] * E, T=8), 64 * (1 - (58 / 64) ** 8))


def test_balanced_and_none_use_the_closed_form_exactly() -> None:
    for routing in (None, RoutingModel.balanced()):
        cover = ExpertCoverage.of(routing, E=E, k=K, layers=MOE_LAYERS)
        assert cover.vectors == ()
        assert cover.distinct(64) == expected_distinct_experts(E=E, k=K, T=64)  # bit for bit: balanced runs unchanged


def test_probabilities_are_the_routing_models_shares_capped_at_one() -> None:
    p = expert_pick_probabilities(RoutingModel.skewed(8.0), layer_idx=3, E=E, k=K)
    assert math.isclose(sum(p), K, rel_tol=1e-12) and max(p) == 1.0 and min(p) >= 0.0
    # rank 1 of layer 3 is expert 3*k mod E = 18; its share is capped at one pick per token
    assert p[18] == 1.0
    assert all(c * PROBABILITY_TOKENS == round(c * PROBABILITY_TOKENS) for c in p)


@pytest.mark.parametrize("T", [1, 8, 64, 703])
def test_skew_hits_fewer_experts_and_one_token_hits_k(T: int) -> None:
    balanced = ExpertCoverage.of(None, E=E, k=K, layers=MOE_LAYERS).distinct(T)
    mild = ExpertCoverage.of(RoutingModel.skewed(1.2), E=E, k=K, layers=MOE_LAYERS).distinct(T)
    hard = ExpertCoverage.of(RoutingModel.skewed(8.0), E=E, k=K, layers=MOE_LAYERS)
    assert len(hard.vectors) == 1  # every layer is the same popularity, rotated: computed once
    if T == 1:
        assert math.isclose(hard.distinct(T), K) and math.isclose(mild, K)  # one token always picks k experts
    else:
        assert hard.distinct(T) < mild < balanced <= E
    # skewed:8 at T = 64: about 10 experts (the five capped ones, then a fast-falling tail), vs 63.9 balanced
    if T == 64:
        assert 9.5 < hard.distinct(T) < 10.5 and balanced > 63.8


def test_histogram_layers_are_averaged() -> None:
    counts = {i: [1] * K + [0] * (E - K) if i % 2 else [1] * E for i in MOE_LAYERS}
    cover = ExpertCoverage.of(RoutingModel.from_histogram(counts), E=E, k=K, layers=MOE_LAYERS)
    # 6 odd layers hit only k experts (p = 1 each), 5 even layers are uniform: the mean of the two
    want = (6 * K + 5 * expected_distinct_experts(E=E, k=K, T=8)) / 11
    assert math.isclose(cover.distinct(8), want, rel_tol=1e-9)
