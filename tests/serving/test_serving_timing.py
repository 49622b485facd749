"""The simulator over the runtime kernel models: one request alone is the runtime's single-request timeline."""

from __future__ import annotations

import pytest
from attrs import evolve

from llm_perf_opt.runtimes import runtime_iteration_timer
from llm_perf_opt.serving.session import SimulateOptions, prepare
from llm_perf_opt.serving.timing import runtime_timer


@pytest.mark.parametrize("runtime", ["vllm", "sglang", "hf-cuda-graph"])
def test_one_request_alone_equals_the_runtime_single_request_times(runtime: str) -> None:
    options = SimulateOptions(
        runtime=runtime,
        device="a100-40gb",
        mode="base",
        output_tokens=40,
        concurrency=1,
        requests=1,
        max_num_batched_tokens=8192 if runtime != "hf-cuda-graph" else None,
        context_quantum=1,
    )
    prepared = prepare(options, timer_factory=runtime_timer)
    (record,) = prepared.run().run.records
    timer = runtime_iteration_timer(
        runtime=runtime, config=prepared.config, device="a100-40gb", workloads={"page": prepared.mix.workload}
    )
    alone = timer.request_times(prompt_tokens=283, max_new_tokens=40, vision_key="page")
    assert record.first_token_s - record.arrival_s == pytest.approx(alone.ttft_s, rel=1e-9)
    tpot = (record.finish_s - record.first_token_s) / 39
    assert tpot == pytest.approx(alone.tpot_s, rel=1e-9)


def test_the_runtime_timer_says_which_model_timed_it() -> None:
    prepared = prepare(SimulateOptions(device="h100-sxm", concurrency=1, requests=1), timer_factory=runtime_timer)
    assert prepared.timer_source == "llm_perf_opt.runtimes vllm kernel model (default profile)"
    assert prepared.run().metrics["engine"]["request_overhead_ms"] > 0


def test_the_timer_cache_rounding_and_batch_interpolation_cost_under_one_percent() -> None:
    base = SimulateOptions(device="a100-40gb", mode="base", output_tokens=128, concurrency=50, requests=300)
    exact = prepare(evolve(base, context_quantum=1), timer_factory=runtime_timer).run().metrics
    cached = prepare(base, timer_factory=runtime_timer).run().metrics
    assert cached["engine"]["timer_calls"] < exact["engine"]["timer_calls"] / 5
    for key in ("output_tokens_per_s", "pages_per_s"):
        assert cached["throughput"][key] == pytest.approx(exact["throughput"][key], rel=0.01)
    assert cached["tpot_ms"]["p50"] == pytest.approx(exact["tpot_ms"]["p50"], rel=0.01)
