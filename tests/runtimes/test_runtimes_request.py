"""The request as a runtime runs it: every stage's bound split sums to that stage's time, kernels and bytes are the
runtime's own (fused, graphed) and not the eager trace's."""

from __future__ import annotations

import math

import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.runtimes.request import runtime_run
from llm_perf_opt.workloads import Workload


@pytest.mark.parametrize("runtime", ["hf-eager", "hf-cuda-graph", "vllm", "sglang"])
def test_stage_bounds_sum_to_the_stage_times(runtime: str, v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    run = runtime_run(runtime=runtime, config=v1_config, workload=standard, device="a100-40gb")
    s = run.stages
    for stage, seconds in (
        ("vision", s.vision_s),
        ("projector", s.projector_s),
        ("prefill", s.prefill_s),
        ("decode", s.decode_s),
        ("root", s.end_to_end_s),
    ):
        bound = run.bounds[stage]
        assert math.isclose(bound.total_s, seconds, rel_tol=1e-9), stage
        assert min(bound.compute_s, bound.memory_s, bound.overhead_s) >= 0.0
    # decode launches the same kernels every step (B = 1, one token: the same experts' count every step)
    assert run.bounds["decode"].kernels == run.decode.kernels * s.decode_steps
    assert run.bounds["prefill"].kernels == run.prefill.kernels
    assert run.bounds["root"].kernels == sum(
        run.bounds[k].kernels for k in ("vision", "projector", "prefill", "decode")
    )


def test_a_fusing_runtime_launches_fewer_kernels_and_moves_fewer_bytes(
    v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    eager = runtime_run(runtime="hf-eager", config=v1_config, workload=standard, device="a100-40gb").bounds
    vllm = runtime_run(runtime="vllm", config=v1_config, workload=standard, device="a100-40gb").bounds
    assert vllm["decode"].kernels < eager["decode"].kernels / 2
    assert vllm["decode"].bytes <= eager["decode"].bytes
    assert vllm["vision"].kernels == eager["vision"].kernels  # no runtime fuses the encoders
    # a decode step in a CUDA graph is paced by its roofline and device gaps, not by 10 us host launches each
    assert vllm["decode"].overhead_s < eager["decode"].overhead_s / 5
