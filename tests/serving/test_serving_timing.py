"""The simulator over the runtime kernel models: one request alone is the runtime's single-request timeline."""

from __future__ import annotations

import pytest
from attrs import evolve

from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.perf.roofline import Rates, time_tree
from llm_perf_opt.perf.stages import StageTimes
from llm_perf_opt.runtimes import runtime_iteration_timer
from llm_perf_opt.runtimes.request import runtime_run
from llm_perf_opt.serving.session import SimulateOptions, prepare
from llm_perf_opt.serving.timing import runtime_timer
from llm_perf_opt.workloads import Workload


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


@pytest.mark.parametrize("runtime", ["hf-eager", "vllm", "sglang"])
@pytest.mark.parametrize("quantum", [1, 64])
def test_one_text_only_request_alone_equals_analyze(runtime: str, quantum: int) -> None:
    """analyze --text-only: hf-eager times the tree (the trace; its torch-free twin here), the others the runtime
    model probed with the text-only request itself.  A 10-token prefill touches about 40 of 64 experts: the timer
    cache once rounded it to 1 token (one decode step's 6), and a page probe scaled it by 40/64."""
    output = 40
    options = SimulateOptions(
        runtime=runtime, device="h100-sxm", text_only=True, output_tokens=output, concurrency=1, requests=1
    )
    prepared = prepare(evolve(options, context_quantum=quantum), timer_factory=runtime_timer)
    (record,) = prepared.run().run.records
    workload = evolve(
        Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=output, config=prepared.config),
        text_only=True,
    )
    if runtime == "hf-eager":
        timed = time_tree(analytic_costs(prepared.config, workload), Rates.for_device("h100-sxm"))
        analyze = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=output - 1)
    else:
        analyze = runtime_run(
            runtime=runtime, config=prepared.config, device="h100-sxm", workload=workload, text_only=True
        ).stages
    assert record.first_token_s - record.arrival_s == pytest.approx(analyze.ttft_s, rel=1e-9)
    tpot = (record.finish_s - record.first_token_s) / (output - 1)
    assert tpot == pytest.approx(analyze.tpot_s, rel=1e-9 if quantum == 1 else 2e-3)  # contexts rounded to 64
