from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import COST_FIELDS

costs = st.builds(Cost, **{name: st.integers(min_value=0, max_value=10**15) for name in COST_FIELDS})


@given(costs, costs)
def test_addition_is_fieldwise(a: Cost, b: Cost) -> None:
    total = a + b
    for name in COST_FIELDS:
        assert getattr(total, name) == getattr(a, name) + getattr(b, name)


@given(costs, st.integers(min_value=0, max_value=1000))
def test_scaled_equals_repeated_addition(a: Cost, n: int) -> None:
    assert a.scaled(n) == Cost.total([a] * n)


@given(costs)
def test_mapping_round_trip(a: Cost) -> None:
    assert Cost.from_mapping(a.as_dict()) == a


def test_totals_use_executed_matmul_flops() -> None:
    cost = Cost(matmul_flops=100, matmul_flops_executed=60, vector_flops=7, bytes_read=3, bytes_written=4)
    assert cost.total_flops == 60 + 7
    assert cost.total_bytes == 3 + 4


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="bytes_read must be >= 0"):
        Cost(bytes_read=-1)


def test_unknown_mapping_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown Cost fields"):
        Cost.from_mapping({"flops": 1})
