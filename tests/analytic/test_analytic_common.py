"""Hand-arithmetic goldens for the primitive op costs (the tracer's eager op-level convention)."""

from __future__ import annotations

from llm_perf_opt.analytic.formulas import common
from llm_perf_opt.core import Cost


def test_linear_with_bias_is_one_addmm() -> None:
    cost = common.linear(N=703, d_in=1280, d_out=1280, bias=True, a=2, w=2)
    assert cost.matmul_flops == 2 * 703 * 1280 * 1280  # 2*N*d_in*d_out
    assert cost.matmul_flops_executed == cost.matmul_flops
    assert cost.vector_flops == 703 * 1280  # one bias add per output
    assert cost.bytes_read == 703 * 1280 * 2 + (1280 * 1280 + 1280) * 2  # input + weight + bias
    assert cost.bytes_written == 703 * 1280 * 2
    assert cost.weight_bytes_read == (1280 * 1280 + 1280) * 2
    assert cost.kernels == 1


def test_linear_without_bias_has_no_vector_flops() -> None:
    cost = common.linear(N=1, d_in=1280, d_out=129280, bias=False, a=2, w=2)
    assert cost.matmul_flops == 2 * 1280 * 129280  # lm_head, one decode position: 330,956,800
    assert cost.matmul_flops == 330_956_800
    assert cost.vector_flops == 0
    assert cost.weight_bytes_read == 1280 * 129280 * 2


def test_conv2d_counts_like_flopcounter() -> None:
    # SAM patch conv on one 1024 view: 64x64 outputs, 768 channels, 3*16*16 = 768 inputs per output
    cost = common.conv2d(B=1, C_in=3, C_out=768, H_in=1024, W_in=1024, H_out=64, W_out=64, kh=16, kw=16, bias=True, a=2)
    assert cost.matmul_flops == 2 * 64 * 64 * 768 * 768  # model-facts §3.7: 2*B*g^2*768*768
    assert cost.vector_flops == 768 * 64 * 64  # bias
    assert cost.bytes_read == 3 * 1024 * 1024 * 2 + (768 * 768 + 768) * 2
    assert cost.bytes_written == 768 * 64 * 64 * 2


def test_causal_entries() -> None:
    assert common.causal_entries(q=703, k=703) == 703 * 704 // 2  # q(q+1)/2 for a fresh prefill
    assert common.causal_entries(q=1, k=704) == 704  # one decode query sees every key
    assert common.causal_entries(q=3, k=10) == 3 * 10 - 3 * 2 // 2  # q*k - q(q-1)/2 = 27


def test_sdpa_dense_and_causal_executed() -> None:
    cost = common.sdpa(BH=10, q=703, k=703, d=128, causal=True, mask_bytes=0, a=2, kv=True)
    assert cost.matmul_flops == 4 * 10 * 703 * 703 * 128  # QK^T + PV, dense
    assert cost.matmul_flops_executed == 4 * 10 * (703 * 704 // 2) * 128
    assert cost.vector_flops == 10 * (703 * 704 // 2) * 5  # softmax on executed scores
    kv = 2 * 10 * 703 * 128 * 2
    assert cost.kv_bytes_read == kv
    assert cost.bytes_read == 10 * 703 * 128 * 2 + kv  # Q + K + V, scores never stored
    assert cost.bytes_written == 10 * 703 * 128 * 2


def test_sdpa_with_mask_adds_one_flop_per_score_and_reads_the_mask() -> None:
    cost = common.sdpa(BH=12, q=196, k=196, d=64, causal=False, mask_bytes=12 * 196 * 196 * 2, a=2)
    assert cost.matmul_flops == cost.matmul_flops_executed == 4 * 12 * 196 * 196 * 64
    assert cost.vector_flops == 12 * 196 * 196 * 6  # softmax 5 + mask add 1
    assert cost.bytes_read == 3 * 12 * 196 * 64 * 2 + 12 * 196 * 196 * 2


def test_sdpa_math_split_by_family() -> None:
    parts = common.sdpa_math(BH=2, q=5, k=5, d=4, mask_bytes=0, a=2, fold_copies=False)
    assert set(parts) == {"data_movement", "elementwise", "linear", "attention"}
    assert parts["linear"].matmul_flops == 2 * (2 * 2 * 5 * 5 * 4)  # two fp32 bmm of 2*BH*q*k*d
    assert parts["attention"].vector_flops == 5 * 2 * 5 * 5  # _safe_softmax
    assert parts["elementwise"].vector_flops == 2 * 5 * 4 + 2 * 5 * 4  # scale Q and K^T
    assert parts["data_movement"].kernels == 5  # q, k, v to fp32, probs cast, output cast
    folded = common.sdpa_math(BH=2, q=5, k=5, d=4, mask_bytes=0, a=2, fold_copies=True)
    assert folded["data_movement"].kernels == 5 + 3  # Q, K^T, V copied before the products


def test_layer_norm() -> None:
    cost = common.layer_norm(N=10, d=8, a=2)
    assert cost.vector_flops == 10 * 8 * (5 + 2)  # 5 per element + weight + bias
    assert cost.bytes_read == 10 * 8 * 2 + 2 * 8 * 2
    assert cost.bytes_written == 10 * 8 * 2 + 2 * 10 * 4  # output + fp32 mean and rstd
    assert cost.weight_bytes_read == 2 * 8 * 2


def test_sort_and_topk() -> None:
    assert common.sort(n=4218, row=4218, in_bytes=8, out_bytes=0).vector_flops == 4218 * 13  # ceil(log2 4218) = 13
    assert common.sort(n=1, row=1, in_bytes=8, out_bytes=0).vector_flops == 0
    assert common.topk(n=703 * 64, in_bytes=4, out_bytes=0).vector_flops == 703 * 64


def test_op_defaults_executed_to_dense() -> None:
    assert common.op(mm=10) == Cost(matmul_flops=10, matmul_flops_executed=10, kernels=1)


def test_fused_bytes() -> None:
    assert common.fused_bytes(weights=3, inputs=4, outputs=5) == 12
