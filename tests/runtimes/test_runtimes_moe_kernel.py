"""The fused-MoE efficiency curve: padded M tiles per expert, values derived by hand from vLLM's default config."""

from __future__ import annotations

import math

import pytest
from attrs import evolve

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.perf.iteration import BatchComposition, PrefillChunk
from llm_perf_opt.runtimes import get_runtime, runtime_iteration_timer
from llm_perf_opt.runtimes.moe_kernel import (
    default_block_m,
    expected_padded_rows,
    fused_moe_efficiency,
    padding_efficiency,
)
from llm_perf_opt.workloads import Workload


def test_default_block_m_switches_at_the_expert_count() -> None:
    # get_default_config: M <= E -> BLOCK_SIZE_M 16, else 64
    assert default_block_m(M=1, E=64) == 16
    assert default_block_m(M=64, E=64) == 16
    assert default_block_m(M=65, E=64) == 64
    with pytest.raises(ValueError, match="M >= 1"):
        default_block_m(M=0, E=64)


@pytest.mark.parametrize(
    ("m", "block_m", "want"),
    [(1, 16, 1 / 16), (16, 16, 1.0), (17, 16, 17 / 32), (48, 64, 48 / 64), (96, 64, 96 / 128), (128, 64, 1.0)],
)
def test_padding_efficiency_is_useful_over_padded_rows(m: int, block_m: int, want: float) -> None:
    assert math.isclose(padding_efficiency(m=m, block_m=block_m), want)


def test_one_token_uses_one_row_of_each_of_k_tiles() -> None:
    # T=1: k experts get one token each, each padded to a 16-row tile: 6 useful rows of 6*16 computed
    assert math.isclose(expected_padded_rows(T=1, E=64, k=6, block_m=16), 6 * 16)
    assert math.isclose(fused_moe_efficiency(T=1, E=64, k=6), 1 / 16)


def test_two_tokens_share_a_tile_when_they_meet_an_expert() -> None:
    # T=2, p=k/E: an expert gets 1 token with prob 2p(1-p) and 2 with p^2; either way one 16-row tile
    p = 6 / 64
    rows = 64 * 16 * (2 * p * (1 - p) + p * p)
    assert math.isclose(expected_padded_rows(T=2, E=64, k=6, block_m=16), rows, rel_tol=1e-9)
    assert math.isclose(fused_moe_efficiency(T=2, E=64, k=6), 2 * 6 / rows, rel_tol=1e-9)


def test_large_calls_approach_the_mean_over_its_tile() -> None:
    # T=1024 > E: 64-row tiles, 96 +- 9 tokens per expert nearly always fill two tiles: 96 / 128
    assert fused_moe_efficiency(T=1024, E=64, k=6) == pytest.approx(0.75, abs=0.005)
    assert fused_moe_efficiency(T=0, E=64, k=6) == 1.0
    assert fused_moe_efficiency(T=65, E=64, k=6) < fused_moe_efficiency(T=64, E=64, k=6)  # the tile grows


def test_only_fused_moe_runtimes_pay_the_padding(v1_config: DeepseekOCRConfig, standard: Workload) -> None:
    assert get_runtime("vllm").fused_moe and get_runtime("sglang").fused_moe
    assert not get_runtime("hf-eager").fused_moe and not get_runtime("hf-cuda-graph").fused_moe
    vllm = runtime_iteration_timer(runtime="vllm", config=v1_config, device="l4", workloads={"p": standard})
    eager = runtime_iteration_timer(runtime="hf-eager", config=v1_config, device="l4", workloads={"p": standard})
    assert vllm.moe_efficiency(1) == pytest.approx(1 / 16)
    assert eager.moe_efficiency(1) == 1.0


def test_padding_adds_compute_time_where_experts_are_compute_bound(
    v1_config: DeepseekOCRConfig, standard: Workload
) -> None:
    # A100: about 200 FLOPs per byte at the ridge; a 4000-token prefill gives each expert ~375 tokens (compute-bound),
    # padded to 384 rows (T > E: 64-row tiles): the experts' matmul time grows by 1/efficiency, the bytes do not
    rt = get_runtime("vllm")
    flat = evolve(rt, fused_moe=False)
    with_curve = runtime_iteration_timer(runtime=rt, config=v1_config, device="a100-40gb", workloads={"p": standard})
    without = runtime_iteration_timer(runtime=flat, config=v1_config, device="a100-40gb", workloads={"p": standard})
    on, off = with_curve.prefill_terms(tokens=4000), without.prefill_terms(tokens=4000)
    assert on.compute_bound_s > off.compute_bound_s
    assert on.bytes == off.bytes
    big = BatchComposition(prefill=(PrefillChunk(new_tokens=4000),))
    assert with_curve.iteration_s(big) > without.iteration_s(big)
    # a decode step reads the active experts' weights: memory-bound, the padded rows cost nothing
    step = BatchComposition(decode_context=(900,))
    assert with_curve.iteration_s(step) == without.iteration_s(step)
