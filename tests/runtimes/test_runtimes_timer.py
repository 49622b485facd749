"""The runtime IterationTimer: one request alone equals single_request_times; batching and graphs behave."""

from __future__ import annotations

import math

import pytest
from attrs import evolve

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.perf.iteration import BatchComposition, IterationTimer, PrefillChunk
from llm_perf_opt.runtimes import runtime_iteration_timer, single_request_times
from llm_perf_opt.runtimes.request import runtime_run
from llm_perf_opt.workloads import RoutingModel, Workload


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-cuda-graph", "vllm", "sglang"])
def test_one_request_alone_equals_single_request_times(
    runtime: str, v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    timer = runtime_iteration_timer(runtime=runtime, config=v1_config, device="a100-40gb", workloads={"page": standard})
    as_protocol: IterationTimer = timer  # mypy checks the protocol
    assert as_protocol is timer
    s, n = standard.seq_len, 20
    ttft = timer.runtime.request_overhead_s + timer.iteration_s(
        BatchComposition(prefill=(PrefillChunk(new_tokens=s, vision_pages=1, vision_key="page"),))
    )
    steps = [timer.iteration_s(BatchComposition(decode_context=(s + i,))) for i in range(1, n)]
    alone = timer.request_times(prompt_tokens=s, max_new_tokens=n, vision_key="page")
    assert math.isclose(alone.ttft_s, ttft, rel_tol=1e-12)
    assert math.isclose(alone.tpot_s, sum(steps) / (n - 1), rel_tol=1e-12)
    full = single_request_times(runtime=runtime, config=v1_config, device="a100-40gb", workload=standard)
    assert full.decode_steps == standard.max_new_tokens - 1
    assert math.isclose(full.ttft_s, ttft, rel_tol=1e-12)


def test_decode_batch_costs_less_per_token_and_more_per_step(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    timer = runtime_iteration_timer(runtime="vllm", config=v1_config, device="h100-sxm", workloads={"page": standard})
    one = timer.iteration_s(BatchComposition(decode_context=(800,)))
    many = timer.iteration_s(BatchComposition(decode_context=(800,) * 32))
    assert one < many < 32 * one
    longer = timer.iteration_s(BatchComposition(decode_context=(8000,) * 32))
    assert longer > many  # attention reads the longer KV


def test_graphs_make_decode_faster_than_eager_launches(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    graphs = runtime_iteration_timer(runtime="vllm", config=v1_config, device="h100-sxm", workloads={"p": standard})
    eager = runtime_iteration_timer(runtime="hf-eager", config=v1_config, device="h100-sxm", workloads={"p": standard})
    step = BatchComposition(decode_context=(800,))
    assert graphs.iteration_s(step) < eager.iteration_s(step) / 4


def test_mixed_iteration_and_empty(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    timer = runtime_iteration_timer(runtime="sglang", config=v1_config, device="h100-sxm", workloads={"p": standard})
    assert timer.iteration_s(BatchComposition()) == 0.0
    prefill = BatchComposition(prefill=(PrefillChunk(new_tokens=512, cached_tokens=256),))
    mixed = BatchComposition(prefill=prefill.prefill, decode_context=(900, 1000))
    assert timer.iteration_s(mixed) >= timer.iteration_s(prefill)
    with pytest.raises(UserError, match="vision_key"):
        timer.iteration_s(BatchComposition(prefill=(PrefillChunk(new_tokens=8, vision_pages=1, vision_key="x"),)))


@pytest.mark.parametrize("runtime", ["vllm", "sglang", "hf-cuda-graph"])
def test_analyze_stage_times_equal_the_request_alone(
    runtime: str, v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    run = runtime_run(runtime=runtime, config=v1_config, workload=standard, device="a100-40gb")
    alone = single_request_times(runtime=runtime, config=v1_config, device="a100-40gb", workload=standard)
    assert math.isclose(run.stages.ttft_s, alone.ttft_s, rel_tol=1e-12)
    assert math.isclose(run.stages.tpot_s, alone.tpot_s, rel_tol=1e-12)
    assert run.kernels_per_decode_step == run.decode.kernels > 0
    assert math.isclose(sum(m.seconds for m in run.breakdown), run.decode.roofline_s + run.decode.gap_s)


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-cuda-graph", "vllm", "sglang"])
@pytest.mark.parametrize("batch", [1, 32, 600])
def test_fast_paths_equal_the_itemised_terms(
    runtime: str, batch: int, v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    timer = runtime_iteration_timer(runtime=runtime, config=v1_config, device="h100-sxm", workloads={"p": standard})
    contexts = tuple(900 + i for i in range(batch))
    terms = timer.decode_terms(contexts=contexts)
    if timer.runtime.overlap:
        expected = max(terms.roofline_s + terms.gap_s, terms.launch_s) + terms.step_host_s
    else:
        expected = terms.roofline_s + terms.launch_s + terms.step_host_s
    assert math.isclose(timer.iteration_s(BatchComposition(decode_context=contexts)), expected, rel_tol=1e-12)
    pre = timer.prefill_terms(tokens=300)
    got = timer.iteration_s(BatchComposition(prefill=(PrefillChunk(new_tokens=300),)))
    want = (
        max(pre.roofline_s + pre.gap_s, pre.launch_s) if timer.runtime.overlap else pre.roofline_s + pre.launch_s
    ) + pre.step_host_s
    assert math.isclose(got, want, rel_tol=1e-12)


def test_skewed_routing_lowers_a_batched_decode_step(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    """Issue 14 follow-up (F4): at batch 64 balanced routing reads ~64 experts' weights per MoE layer and step,
    skewed:8 about 10 - the vllm TPOT drops; one sequence picks k experts either way, so batch 1 does not move."""
    wide = evolve(standard, batch_size=64)
    runs = {
        name: runtime_run(runtime="vllm", config=v1_config, workload=wide, device="h100-sxm", routing=routing)
        for name, routing in (("balanced", RoutingModel.balanced()), ("skewed", RoutingModel.skewed(8.0)))
    }
    assert runs["skewed"].stages.tpot_s < 0.8 * runs["balanced"].stages.tpot_s
    assert runs["skewed"].bytes_per_token < 0.8 * runs["balanced"].bytes_per_token
    assert runs["skewed"].stages.ttft_s <= runs["balanced"].stages.ttft_s
    assert runtime_run(runtime="vllm", config=v1_config, workload=wide, device="h100-sxm").stages == (
        runs["balanced"].stages
    )  # routing=None is balanced
    one = [
        runtime_run(runtime="vllm", config=v1_config, workload=standard, device="h100-sxm", routing=r).stages.tpot_s
        for r in (RoutingModel.balanced(), RoutingModel.skewed(8.0))
    ]
    assert math.isclose(one[0], one[1], rel_tol=1e-12)


@pytest.mark.parametrize("runtime", ["hf-eager", "vllm"])
def test_bytes_are_rescaled_to_the_dtype_once(runtime: str, v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    """Issue 14 follow-up (F2): the runtime's bytes move with the element width (fp32 x2, fp8 /2, floor per cost)."""
    run = {
        dtype: runtime_run(runtime=runtime, config=v1_config, workload=standard, device="h100-sxm", dtype=dtype)
        for dtype in ("fp32", "bf16", "fp8")
    }
    bf16 = run["bf16"]
    assert run["fp32"].bytes_per_token == 2 * bf16.bytes_per_token
    assert run["fp8"].bytes_per_token == pytest.approx(bf16.bytes_per_token / 2, rel=1e-6)
    assert run["fp8"].bounds["decode"].bytes == pytest.approx(bf16.bounds["decode"].bytes / 2, rel=1e-6)
    groups = {m.module: m.bytes for m in bf16.breakdown}
    assert {m.module: m.bytes for m in run["fp32"].breakdown} == {g: 2 * b for g, b in groups.items()}
