"""The analytic model as the sweep's default cost function."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.perf import CompiledTree, Rates, StageTimes, time_tree
from llm_perf_opt.perf.analytic_adapter import workload_costs_from_analytic
from llm_perf_opt.perf.compiled import WorkloadCosts
from llm_perf_opt.perf.sweep import SweepSpec, run_sweep
from llm_perf_opt.perf.throughput import ExpectedCoverageRouting
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.routing import RoutingModel

BASE = DeepseekOCRConfig.base()
H100 = Rates.for_device("h100-sxm")


def _workload(batch: int = 1, n_new: int = 64) -> Workload:
    return Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=n_new, batch_size=batch)


def _costs(batch: int, routing: RoutingModel, n_new: int = 64) -> WorkloadCosts:
    return workload_costs_from_analytic(BASE, _workload(batch, n_new), attention="flash", routing=routing)


def test_memory_numbers_of_the_base_model() -> None:
    costs = _costs(1, RoutingModel.balanced(), n_new=512)
    assert costs.weight_bytes == 6_672_212_480  # 3,336,106,240 params x 2 B
    assert costs.kv_cache_bytes == 61_440 * (703 + 512 - 1)  # counted once at S+N-1


@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_fast_path_equals_the_cost_tree_walk(attention: str) -> None:
    tree = analytic_costs(BASE, _workload(2), attention=attention)  # type: ignore[arg-type]
    costs = workload_costs_from_analytic(BASE, _workload(2), attention=attention, routing=RoutingModel.balanced())
    assert sorted(costs.compiled.rows) == sorted(CompiledTree.from_tree(tree).rows)  # the analytic tree is a CostTree
    walked = time_tree(tree, H100)
    fast = costs.compiled.stage_seconds(H100)
    for stage in ("vision", "projector", "prefill", "decode"):
        assert fast[stage] == pytest.approx(walked.stage_s[stage], rel=1e-12)


def test_expected_coverage_reads_fewer_experts_than_balanced_at_batch_8() -> None:
    balanced = _costs(8, RoutingModel.balanced()).compiled.stage_seconds(H100)
    uniform = _costs(8, ExpectedCoverageRouting()).compiled.stage_seconds(H100)
    assert uniform["decode"] < balanced["decode"]  # ~35 experts per layer call instead of 48
    assert uniform["vision"] == pytest.approx(balanced["vision"])
    single = [
        _costs(1, r).compiled.stage_seconds(H100)["decode"]
        for r in (RoutingModel.balanced(), ExpectedCoverageRouting())
    ]
    assert single[0] == pytest.approx(single[1])  # T = 1: exactly k experts either way


def test_default_sweep_uses_the_analytic_model() -> None:
    spec = SweepSpec(
        devices=("h100-sxm",), pages=(("base", (1024, 1024)),), batch_sizes=(1,), max_new_tokens=(16,), dtypes=("bf16",)
    )
    (row,) = run_sweep(spec).rows
    assert row.seq_len == 283  # 1 + 273 + 9
    assert row.weights_gb == pytest.approx(6.67221248)
    assert row.tpot_ms > 1.0  # eager batch-1 decode: over a thousand launches per token at 10 us
    assert row.ttft_ms > 0 and row.fits


@settings(max_examples=10, deadline=None)
@given(n_new=st.integers(1, 3000), extra=st.integers(0, 500), batch=st.integers(1, 6))
def test_end_to_end_grows_with_tokens_and_ttft_does_not(n_new: int, extra: int, batch: int) -> None:
    rates = Rates.for_device("a100-80gb")
    short = StageTimes.from_stage_seconds(
        _costs(batch, ExpectedCoverageRouting(), n_new).compiled.stage_seconds(rates), decode_steps=n_new - 1
    )
    long = StageTimes.from_stage_seconds(
        _costs(batch, ExpectedCoverageRouting(), n_new + extra).compiled.stage_seconds(rates),
        decode_steps=n_new + extra - 1,
    )
    assert long.end_to_end_s >= short.end_to_end_s
    assert long.ttft_s == pytest.approx(short.ttft_s)


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(2, 16))
def test_vision_time_linear_in_batch(batch: int) -> None:
    one = _costs(1, RoutingModel.balanced(), 2).compiled.stage_seconds(H100)["vision"]
    many = _costs(batch, RoutingModel.balanced(), 2).compiled.stage_seconds(H100)["vision"]
    assert many == pytest.approx(batch * one, rel=1e-9)  # every page's views run the encoders once
