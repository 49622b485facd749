from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import COST_FIELDS, Counters

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


# -- Counters: the mutable running sums --------------------------------------------------------------------------


def test_counters_have_the_cost_fields() -> None:
    assert sorted(Counters.__slots__) == sorted(COST_FIELDS)
    assert list(Counters().as_dict()) == list(COST_FIELDS)


def test_counters_add_costs_and_counters_times_and_freeze() -> None:
    one = Cost(matmul_flops=3, matmul_flops_executed=2, vector_flops=5, bytes_read=7, bytes_written=11, kernels=1)
    acc = Counters()
    acc.add(one)
    acc.add(Counters.from_cost(one), 4)
    assert acc.to_cost() == one.scaled(5)
    assert acc.to_cost(kernels=False) == attrs.evolve(one.scaled(5), kernels=0)
    assert acc.any() and not Counters().any()


def test_counters_copy_is_independent_and_values_follow_cost_fields() -> None:
    values = list(range(1, len(COST_FIELDS) + 1))
    base = Counters.from_values(values)
    assert base.as_dict() == dict(zip(COST_FIELDS, values, strict=True))
    assert base == Counters.from_mapping(dict(zip(COST_FIELDS, values, strict=True)))
    assert base.copy() == base  # every field copied (each holds a different value)
    other = base.copy()
    other.kernels += 1
    assert other != base and other.kernels == base.kernels + 1
    with pytest.raises(ValueError, match="unknown counter fields"):
        Counters.from_mapping({"flops": 1})
    with pytest.raises(ValueError):
        Counters.from_values([1, 2])
