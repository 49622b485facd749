"""Language decoder (model-facts §2.4-§2.5, §3.3-§3.4, §3.7): closed forms per node, eager op-level convention.

Symbols for one forward over ``B`` sequences of ``q`` new tokens (``q = S`` at prefill, 1 per decode step):
``N = B*q`` rows, ``k`` keys each query row attends over (``S`` at prefill, ``S + i`` at decode step ``i``),
``d`` width (1280), ``H`` heads, ``c = d/H`` head width (128), ``d_ff`` dense MLP width (6848), ``Ie`` expert width
(896), ``Is`` shared-expert width (1792), ``E`` routed experts (64), ``k_top`` experts per token (6), ``V`` vocab
(129280), ``a`` bytes per element.  model-facts §3.7: attention ``2*q*4*d^2 + 4*H*q*k*c`` per layer, dense MLP
``2*q*3*d*d_ff``, MoE ``2*q*(d*E + 3*d*Is + k_top*3*d*Ie)``, lm_head ``2*q*d*V``, rotary ``2*(c/2)*q``.
"""

from __future__ import annotations

from llm_perf_opt.analytic.formulas.common import (
    ACT_FLOPS,
    F32,
    I64,
    copy,
    elementwise,
    fill,
    gather,
    linear,
    matmul,
    op,
    reduction,
    sdpa,
    softmax,
    sort,
    topk,
)
from llm_perf_opt.core import Cost

__all__ = [
    "attention_eager",
    "attention_flash",
    "causal_mask_compare",
    "causal_mask_fills",
    "embedding",
    "expert_mlp",
    "head_merge",
    "kv_append",
    "lm_head",
    "logits_upcast",
    "moe_combine",
    "moe_dispatch",
    "moe_gate",
    "position_ids",
    "qkvo",
    "residual_add",
    "rms_norm",
    "rope",
    "rope_shared",
    "rotary_cos_sin",
    "swiglu_linears",
    "swiglu_mul",
    "swiglu_silu",
]


def embedding(*, N: int, d: int, a: int) -> Cost:
    """``embed_tokens`` over ``N`` ids: gather ``N`` rows of the table (weight bytes) with an int64 index.

    Source: model-facts §3.3 step 1 (all ``S`` ids embedded, image rows later overwritten). Leaves out nothing.
    """
    return gather(rows_bytes=N * d * a, index_bytes=N * I64, weight=True)


def position_ids(*, q: int) -> Cost:
    """``arange(past, past + q)``: ``q`` int64 positions (shared by the batch).

    Source: ``DeepseekOCRModel.forward`` when no positions are given. Leaves out nothing.
    """
    return fill(written=q * I64)


def causal_mask_fills(*, q: int, a: int) -> Cost:
    """Data movement of the eager path's additive causal mask for a fresh prefill of ``q`` queries:
    ``full(q, q)`` in fp32, ``arange(q)`` and the final cast of the mask to the activation dtype.
    Source: transformers 4.46 ``_make_causal_mask`` (model-facts §3.3 step 4).
    Leaves out the past-columns concat (never needed here).
    """
    qq = q * q
    return fill(written=qq * F32) + fill(written=q * I64) + copy(read=qq * F32, written=qq * a)


def causal_mask_compare(*, q: int) -> Cost:
    """Elementwise part of the causal mask: ``arange + 1`` (int64), the ``<`` comparison (a bool ``q x q``) and
    the in-place ``masked_fill_`` of the fp32 mask.  Leaves out the past-columns concat (decode has no mask).
    Source: transformers 4.46 ``_make_causal_mask``.
    """
    qq = q * q
    return (
        elementwise(n=q, read=q * I64, written=q * I64)
        + elementwise(n=qq, read=2 * q * I64, written=qq)
        + elementwise(n=qq, read=qq * F32 + qq, written=qq * F32)
    )


def rms_norm(*, N: int, d: int, a: int) -> Cost:
    """``DeepseekV2RMSNorm`` as eight ops: cast to fp32, square, mean, +eps, rsqrt, scale, cast back, weight.

    FLOPs ``4*N*d + 3*N`` (square, sum, scale, weight per element; divide, +eps, rsqrt per row).
    Source: ``DeepseekV2RMSNorm`` (model-facts §2.4: fp32, cast back, then weight). Leaves out nothing.
    """
    n = N * d
    return (
        copy(read=n * a, written=n * F32)
        + elementwise(n=n, read=n * F32, written=n * F32)
        + reduction(n_in=n, n_out=N, in_bytes=F32, out_bytes=F32, mean=True)
        + elementwise(n=N, read=N * F32, written=N * F32).scaled(2)
        + elementwise(n=n, read=n * F32 + N * F32, written=n * F32)
        + copy(read=n * F32, written=n * a)
        + elementwise(n=n, read=n * a + d * a, written=n * a, weight=d * a)
    )


def qkvo(*, N: int, d: int, d_kv: int, a: int) -> dict[str, Cost]:
    """``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` (no bias): ``2*N*(2*d*d + 2*d*d_kv)``.

    Source: model-facts §2.4 (MHA, no bias), §3.7. Leaves out nothing.
    """
    return {
        "q_proj": linear(N=N, d_in=d, d_out=d, bias=False, a=a, w=a),
        "k_proj": linear(N=N, d_in=d, d_out=d_kv, bias=False, a=a, w=a),
        "v_proj": linear(N=N, d_in=d, d_out=d_kv, bias=False, a=a, w=a),
        "o_proj": linear(N=N, d_in=d, d_out=d, bias=False, a=a, w=a),
    }


def rotary_cos_sin(*, B: int, q: int, c: int, a: int) -> Cost:
    """``LlamaRotaryEmbedding`` for ``position_ids [B, q]``: the ``inv_freq`` buffer (``c/2``, model dtype) and the
    positions cast to fp32, the ``[c/2, 1] x [1, q]`` product per row (``2*B*(c/2)*q`` matmul FLOPs; model-facts §3.7
    ``2*64*q`` at ``B = 1``), concat, cos, sin, two scalings by ``attention_scaling``, two casts back.
    Leaves out a shared cos/sin cache (upstream recomputes per layer, so does this).
    """
    half, n = c // 2, B * q * c
    return (
        copy(read=half * a, written=half * F32)
        + copy(read=B * q * I64, written=B * q * F32)
        + op(mm=2 * B * half * q, read=half * F32 + B * q * F32, written=B * half * q * F32)
        + copy(read=2 * B * half * q * F32, written=n * F32)
        + elementwise(n=n, read=n * F32, written=n * F32).scaled(4)
        + copy(read=n * F32, written=n * a).scaled(2)
    )


def rope(*, N: int, H: int, c: int, a: int) -> Cost:
    """Rotate-half RoPE on the ``N`` rows of q or k with per-row positions: :func:`rope_shared` with
    ``cos_rows = N``.  Source: transformers 4.46 ``apply_rotary_pos_emb``/``rotate_half`` (model-facts §2.4).
    Leaves out nothing.
    """
    return rope_shared(N=N, H=H, c=c, cos_rows=N, a=a)


def rope_shared(*, N: int, H: int, c: int, cos_rows: int, a: int) -> Cost:
    """Rotate-half RoPE on ``N`` rows of q or k with ``H`` heads (``n = N*H*c`` elements): ``x*cos +
    rotate_half(x)*sin`` as five ops (mul, neg of one half, concat, mul, add); ``cos``/``sin`` hold ``cos_rows``
    rows (``N`` for per-row positions, ``L`` when one table is broadcast over the batch) and are read once per
    multiply.  Source: transformers ``apply_rotary_pos_emb``/``rotate_half``. Leaves out nothing.
    """
    n, cs = N * H * c, cos_rows * c * a
    return (
        elementwise(n=n, read=n * a + cs, written=n * a)
        + elementwise(n=n // 2, read=n // 2 * a, written=n // 2 * a)
        + copy(read=n * a, written=n * a)
        + elementwise(n=n, read=n * a + cs, written=n * a)
        + elementwise(n=n, read=2 * n * a, written=n * a)
    )


def kv_append(*, N: int, d_kv: int, a: int) -> Cost:
    """Write the ``q`` new keys and values into the static cache: two slice ``copy_`` of ``N*d_kv*a`` each
    (the new positions only; model-facts §3.4).
    Leaves out cache re-allocation (upstream's ``DynamicCache`` grows by ``cat``; the static cache does not).
    """
    n = N * d_kv * a
    return copy(read=n, written=n, kv_written=n).scaled(2)


def attention_eager(*, B: int, q: int, k: int, H: int, c: int, a: int, masked: bool) -> Cost:
    """HF-eager attention core over a cache of ``k`` keys: ``QK^T`` (``2*B*H*q*k*c``), scale, mask add (prefill),
    cast to fp32, softmax, cast back, ``PV`` (``2*B*H*q*k*c``); K and V are read from the KV cache.

    RoPE leaves the queries in the projection's ``[B, q, H, c]`` layout, so with ``B > 1`` and ``q > 1`` the
    batch and head dimensions cannot be folded for ``bmm`` and ``matmul`` copies the queries first.
    Source: transformers 4.46 ``LlamaAttention`` eager path (model-facts §2.4).
    """
    BH, s = B * H, B * H * q * k
    cost = copy(read=B * q * H * c * a, written=B * q * H * c * a) if B > 1 and q > 1 else Cost()
    cost += matmul(b=BH, m=q, k=c, n=k, a_bytes=a, b_bytes=a, out_bytes=a, kv_b=True)
    cost += elementwise(n=s, read=s * a, written=s * a)
    if masked:
        cost += elementwise(n=s, read=s * a + q * k * a, written=s * a)
    cost += copy(read=s * a, written=s * F32) + softmax(n=s, e=F32) + copy(read=s * F32, written=s * a)
    return cost + matmul(b=BH, m=q, k=k, n=c, a_bytes=a, b_bytes=a, out_bytes=a, kv_b=True)


def attention_flash(*, B: int, q: int, k: int, H: int, c: int, a: int, causal: bool) -> Cost:
    """Fused SDPA over a cache of ``k`` keys: dense ``4*B*H*q*k*c``; executed causal-effective when ``causal``
    (a fresh prefill: ``q*k - q*(q-1)/2`` scores per head); K and V read from the KV cache.
    Source: model-facts §2.4, §3.7; tracer ``sdpa_cost``. Leaves out tile granularity of the causal mask.
    """
    return sdpa(BH=B * H, q=q, k=k, d=c, causal=causal, mask_bytes=0, a=a, kv=True)


def head_merge(*, N: int, d: int, a: int) -> Cost:
    """``transpose(1, 2).contiguous()`` of the attention output: a copy when ``q > 1`` (caller decides).

    Source: ``LlamaAttention.forward``. Leaves out nothing.
    """
    return copy(read=N * d * a, written=N * d * a)


def residual_add(*, n: int, a: int) -> Cost:
    """A residual add over ``n`` elements.

    Source: ``DeepseekV2DecoderLayer.forward`` (model-facts §2.4). Leaves out nothing.
    """
    return elementwise(n=n, read=2 * n * a, written=n * a)


def swiglu_linears(*, N: int, d: int, d_ff: int, a: int) -> dict[str, Cost]:
    """``gate_proj``, ``up_proj`` (``d -> d_ff``) and ``down_proj`` (``d_ff -> d``), no bias: ``2*N*3*d*d_ff``.

    Source: model-facts §2.4, §3.7. Leaves out nothing.
    """
    return {
        "gate_proj": linear(N=N, d_in=d, d_out=d_ff, bias=False, a=a, w=a),
        "up_proj": linear(N=N, d_in=d, d_out=d_ff, bias=False, a=a, w=a),
        "down_proj": linear(N=N, d_in=d_ff, d_out=d, bias=False, a=a, w=a),
    }


def swiglu_silu(*, N: int, d_ff: int, a: int) -> Cost:
    """``act_fn`` (SiLU) over ``N*d_ff``: 5 FLOPs per element.

    Source: tracer ``ACTIVATION_FLOPS['silu']``. Leaves out the cost of exp relative to a multiply.
    """
    return elementwise(n=N * d_ff, flops=ACT_FLOPS["silu"], read=N * d_ff * a, written=N * d_ff * a)


def swiglu_mul(*, N: int, d_ff: int, a: int) -> Cost:
    """``silu(gate) * up`` over ``N*d_ff``.

    Source: ``DeepseekV2MLP.forward``. Leaves out nothing.
    """
    return elementwise(n=N * d_ff, read=2 * N * d_ff * a, written=N * d_ff * a)


def expert_mlp(*, N: int, d: int, d_ff: int, a: int) -> Cost:
    """One SwiGLU MLP call on ``N`` rows (dense MLP, a routed expert's slice, or the shared experts).

    Source: model-facts §2.4 (``DeepseekV2MLP``). Leaves out nothing.
    """
    return (
        Cost.total(swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).values())
        + swiglu_silu(N=N, d_ff=d_ff, a=a)
        + swiglu_mul(N=N, d_ff=d_ff, a=a)
    )


def moe_gate(*, T: int, d: int, E: int, k_top: int, a: int) -> Cost:
    """``MoEGate`` on ``T`` tokens: fp32 casts of the tokens and the ``[E, d]`` weight, fp32 logits
    (``2*T*d*E``, model-facts §3.7), softmax over ``E``, top-``k_top``, scaling by ``routed_scaling_factor``.
    Leaves out group-limited and noaux branches (unused: greedy).
    """
    return (
        copy(read=T * d * a, written=T * d * F32)
        + copy(read=E * d * a, written=E * d * F32, weight=E * d * a)
        + op(mm=2 * T * d * E, read=(T + E) * d * F32, written=T * E * F32)
        + softmax(n=T * E, e=F32)
        + topk(n=T * E, in_bytes=F32, out_bytes=T * k_top * (F32 + I64))
        + elementwise(n=T * k_top, read=T * k_top * F32, written=T * k_top * F32)
    )


def moe_dispatch(*, T: int, d: int, E: int, k_top: int, a: int) -> Cost:
    """``moe_infer`` up to the experts: per-expert counts (zeros, scatter, sum), ``argsort`` of the ``A = T*k_top``
    assignments (``A*ceil(log2 A)`` comparisons), token index ``// k_top`` and the gather of ``A`` token rows.
    Source: upstream ``moe_infer`` (model-facts §2.4, §4: `moe_infer`).
    Leaves out the host sync of the counts (a routing model supplies them).
    """
    A = T * k_top
    return (
        fill(written=T * E * I64)
        + copy(read=A * I64, written=A * I64)
        + reduction(n_in=T * E, n_out=E, in_bytes=I64, out_bytes=I64, mean=False)
        + sort(n=A, row=A, in_bytes=I64, out_bytes=2 * A * I64)
        + elementwise(n=A, read=A * I64, written=A * I64)
        + gather(rows_bytes=A * d * a, index_bytes=A * I64, weight=False)
    )


def moe_combine(*, T: int, d: int, k_top: int, a: int) -> Cost:
    """``moe_infer`` after the experts: concat the expert outputs, scatter back (``index_put_``), cast to fp32,
    weight in place, sum over ``k_top``, cast back; then the shared-expert residual add (``T*d``).
    Source: upstream ``moe_infer`` (model-facts §2.4). Leaves out nothing.
    """
    A, n = T * k_top, T * k_top * d
    return (
        copy(read=n * a, written=n * a)
        + copy(read=A * I64 + n * a, written=n * a)
        + copy(read=n * a, written=n * F32)
        + elementwise(n=n, read=n * F32 + A * F32, written=n * F32)
        + reduction(n_in=n, n_out=T * d, in_bytes=F32, out_bytes=F32, mean=False)
        + copy(read=T * d * F32, written=T * d * a)
        + elementwise(n=T * d, read=2 * T * d * a, written=T * d * a)
    )


def lm_head(*, N: int, d: int, V: int, a: int) -> Cost:
    """``lm_head`` (no bias) on all ``N`` positions: ``2*N*d*V`` (model-facts §3.7: 232.663 GFLOP at N = 703).

    Leaves out logits-to-keep (this revision computes every position).
    """
    return linear(N=N, d_in=d, d_out=V, bias=False, a=a, w=a)


def logits_upcast(*, N: int, V: int, a: int) -> Cost:
    """``logits.float()``: read ``N*V*a``, write fp32 ``N*V*4`` (363.5 MB at N = 703).

    Source: model-facts §3.3 step 4. Leaves out nothing.
    """
    return copy(read=N * V * a, written=N * V * F32)
