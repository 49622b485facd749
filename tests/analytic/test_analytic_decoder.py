"""Hand-arithmetic goldens for the decoder formulas (model-facts §2.4-§2.6, §3.4, §3.7)."""

from __future__ import annotations

from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.core import Cost

D, H, C, V = 1280, 10, 128, 129280


def _attention_matmul(q: int, k: int) -> int:
    linears = Cost.total(dec.qkvo(N=q, d=D, d_kv=D, a=2).values()).matmul_flops
    core = dec.attention_flash(B=1, q=q, k=k, H=H, c=C, a=2, causal=q > 1).matmul_flops
    return linears + core


def test_attention_matches_facts() -> None:
    assert _attention_matmul(703, 703) == 2 * 703 * 4 * 1280**2 + 4 * 10 * 703 * 703 * 128  # model-facts §3.7


def test_prefill_layers_match_facts() -> None:
    q = 703
    rotary = dec.rotary_cos_sin(B=1, q=q, c=C, a=2).matmul_flops
    assert rotary == 2 * 64 * q  # "extra rotary matmuls 2*64*q per layer"
    dense = Cost.total(dec.swiglu_linears(N=q, d=D, d_ff=6848, a=2).values()).matmul_flops
    assert _attention_matmul(q, q) + dense + rotary == 48_717_427_584  # layer 0: 48.717 GFLOP
    moe = (
        dec.moe_gate(T=q, d=D, E=64, k_top=6, a=2).matmul_flops
        + dec.expert_mlp(N=q, d=D, d_ff=1792, a=2).matmul_flops
        + dec.expert_mlp(N=6 * q, d=D, d_ff=896, a=2).matmul_flops
    )
    assert moe == 2 * q * (1280 * 64 + 3 * 1280 * 1792 + 6 * 3 * 1280 * 896)
    assert _attention_matmul(q, q) + moe + rotary == 50_560_299_904  # each MoE layer: 50.560 GFLOP
    assert 48_717_427_584 + 11 * 50_560_299_904 == 604_880_726_528  # decoder, 12 layers: 604.881 GFLOP


def test_decode_step_matches_facts() -> None:
    # one token at 704 keys: layers 860.489 MFLOP + lm_head 330.957 MFLOP = 1191.446 MFLOP (model-facts §3.7)
    rotary = dec.rotary_cos_sin(B=1, q=1, c=C, a=2).matmul_flops
    dense = Cost.total(dec.swiglu_linears(N=1, d=D, d_ff=6848, a=2).values()).matmul_flops
    moe = 2 * (1280 * 64 + 3 * 1280 * 1792 + 6 * 3 * 1280 * 896)
    layers = 12 * (_attention_matmul(1, 704) + rotary) + dense + 11 * moe
    assert layers == 860_489_216
    assert dec.lm_head(N=1, d=D, V=V, a=2).matmul_flops == 330_956_800
    assert layers + 330_956_800 == 1_191_446_016


def test_causal_flash_executes_half_plus_diagonal() -> None:
    cost = dec.attention_flash(B=1, q=703, k=703, H=H, c=C, a=2, causal=True)
    assert cost.matmul_flops_executed == 4 * H * (703 * 704 // 2) * C
    step = dec.attention_flash(B=1, q=1, k=704, H=H, c=C, a=2, causal=False)
    assert step.matmul_flops_executed == step.matmul_flops == 4 * H * 704 * C


def test_eager_attention_reads_the_cache_twice() -> None:
    cost = dec.attention_eager(B=1, q=1, k=704, H=H, c=C, a=2, masked=False)
    assert cost.matmul_flops == 4 * H * 704 * C
    assert cost.kv_bytes_read == 2 * H * 704 * C * 2  # K for the scores, V for the output
    assert cost.vector_flops == H * 704 * (1 + 5)  # scale + softmax
    batched = dec.attention_eager(B=2, q=5, k=5, H=H, c=C, a=2, masked=True)
    assert batched.kernels == 1 + 7  # query copy (B>1, q>1) + bmm, scale, mask, cast, softmax, cast, bmm


def test_kv_append_writes_new_tokens_only() -> None:
    cost = dec.kv_append(N=703, d_kv=1280, a=2)
    assert cost.kv_bytes_written == 2 * 703 * 1280 * 2  # K and V, one layer: 3,599,360 B
    assert cost.kv_bytes_written * 12 == 61_440 * 703  # 61,440 B per token, all 12 layers


def test_rms_norm() -> None:
    cost = dec.rms_norm(N=703, d=D, a=2)
    assert cost.vector_flops == 4 * 703 * 1280 + 3 * 703
    assert cost.kernels == 8
    assert cost.weight_bytes_read == 1280 * 2


def test_moe_routing_ops() -> None:
    gate = dec.moe_gate(T=703, d=D, E=64, k_top=6, a=2)
    assert gate.matmul_flops == 2 * 703 * 1280 * 64
    assert gate.weight_bytes_read == 64 * 1280 * 2  # the fp32 cast reads the bf16 weight
    dispatch = dec.moe_dispatch(T=703, d=D, E=64, k_top=6, a=2)
    assert dispatch.vector_flops == 703 * 64 + 4218 * 13 + 4218  # count sum, argsort, index // k_top
    combine = dec.moe_combine(T=703, d=D, k_top=6, a=2)
    assert combine.vector_flops == 2 * 4218 * 1280 + 703 * 1280  # weight, sum over k, shared add


def test_causal_mask_parts() -> None:
    fills = dec.causal_mask_fills(q=703, a=2)
    assert fills.bytes_written == 703 * 703 * 4 + 703 * 8 + 703 * 703 * 2
    assert dec.causal_mask_compare(q=703).vector_flops == 703 + 2 * 703 * 703


def test_embedding_and_logits() -> None:
    assert dec.embedding(N=703, d=D, a=2).weight_bytes_read == 703 * 1280 * 2  # the rows it selects
    assert dec.logits_upcast(N=703, V=V, a=2).bytes_written == 703 * 129280 * 4  # 363.5 MB
