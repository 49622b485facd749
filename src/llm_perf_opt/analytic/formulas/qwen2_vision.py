"""DeepSeek-OCR-2's Qwen2-style vision encoder (transformers ``DeepseekOcr2VisionEncoder``), eager op-level convention.

One encoder call sees ``B`` views; each view is ``T_s`` SAM tokens (``(R/64)^2``: 144 for a 768 px view, 256 for
1024 px) followed by ``Q`` learnable queries (``Q = T_s``), ``L = T_s + Q`` tokens in all.  Attention is
bidirectional over the SAM tokens and causal over the queries (a "block" mask: ``kv <= q`` or both in block 0).
Symbols: ``D`` width (896), ``H`` query heads (14), ``H_kv`` key/value heads (2, grouped-query attention),
``c = D/H`` head width (64), ``F`` MLP width (4864), ``a`` bytes per activation element.

Per layer (``DeepseekOcr2VisionEncoderLayer``): RMSNorm, q/k/v projections with bias, rotate-half RoPE with a cos/sin
table shared by the batch, ``repeat_kv`` copies of K and V to ``H`` heads, attention under the block mask, ``o_proj``
without bias, residual, RMSNorm, SwiGLU MLP, residual.  Matmul FLOPs per layer:
``2*B*L*(D*(H + 2*H_kv)*c + H*c*D) + 4*B*H*L^2*c + 2*B*L*3*D*F``.

Source: transformers ``models/deepseek_ocr2/modeling_deepseek_ocr2.py`` (5.10+) and ``masking_utils``
(``create_causal_mask`` with ``block_sequence_ids``).  The RMSNorm, the q/k/v/o and MLP linears are the decoder's
formulas (:mod:`.decoder`).
"""

from __future__ import annotations

from llm_perf_opt.analytic.formulas.common import (
    F32,
    I64,
    copy,
    elementwise,
    fill,
    matmul,
    sdpa,
    softmax,
)
from llm_perf_opt.analytic.formulas.decoder import rope_shared
from llm_perf_opt.core import Cost

__all__ = [
    "block_mask",
    "gqa_attention_eager",
    "gqa_attention_flash",
    "query_concat",
    "repeat_kv",
    "rope_shared",
    "rotary_table",
]


def query_concat(*, B: int, T_s: int, Q: int, D: int, a: int) -> Cost:
    """``cat([SAM tokens, queries])`` in ``DeepseekOcr2VisionModel``: the ``B*T_s`` SAM tokens and the query bank
    (``Q*D``, a weight read once: it is expanded over the batch) into ``B*L*D``.
    Source: ``DeepseekOcr2VisionModel.forward``. Leaves out the flatten/transpose and the final query slice (views).
    """
    bank = Q * D * a
    return copy(read=B * T_s * D * a + bank, written=B * (T_s + Q) * D * a, weight=bank)


def block_mask(*, B: int, L: int, T_s: int, eager: bool, a: int) -> Cost:
    """The encoder's position ids and its block-causal mask (``create_causal_mask`` with block ids), per call.

    Position ids ``arange(L)``; block ids ``full(B, L, -1)`` with the first ``T_s`` set to 0 (a scalar ``copy_``);
    the mask is ``or(causal, block)`` over index grids: ``arange`` of batch, head, q and kv (+ two offset adds),
    ``kv <= q`` (``L^2``), the block ids gathered at q and kv (``B*L`` each), ``q_block == kv_block`` and
    ``q_block >= 0``, their ``and``, and two ``or``: a bool ``[B, 1, L, L]``.  ``eager``: one ``where`` turns it into
    an additive ``a``-byte mask (two scalar constants).  Source: transformers ``masking_utils``
    (``sdpa_mask``/``eager_mask``, ``or_masks``, ``blockwise_overlay``). Leaves out nothing.
    """
    LL, BLL, BL = L * L, B * L * L, B * L
    cost = (
        fill(written=L * I64)  # position ids
        + fill(written=BL * I64)  # block ids
        + fill(written=I64)  # the 0 written into block 0
        + copy(read=I64, written=B * T_s * I64)
        + fill(written=B * I64)  # batch arange
        + fill(written=I64)  # head arange
        + fill(written=L * I64).scaled(2)  # q and kv aranges
        + elementwise(n=L, read=L * I64, written=L * I64).scaled(2)  # + offsets
        + fill(written=1)  # or_masks' False start
        + elementwise(n=LL, read=2 * L * I64, written=LL)  # kv <= q
        + elementwise(n=LL, read=1 + LL, written=LL)  # False | causal
        + copy(read=BL * I64 + L * I64 + B * I64, written=BL * I64).scaled(2)  # block ids at q and at kv
        + elementwise(n=BLL, read=2 * BL * I64, written=BLL)  # q_block == kv_block
        + elementwise(n=BL, read=BL * I64, written=BL)  # q_block >= 0
        + elementwise(n=BLL, read=BLL + BL, written=BLL)  # and
        + elementwise(n=BLL, read=LL + BLL, written=BLL)  # causal | block
    )
    if eager:
        cost += fill(written=a).scaled(2) + elementwise(n=BLL, read=BLL + 2 * a, written=BLL * a)
    return cost


def rotary_table(*, N: int, c: int, a: int, unique: int | None = None) -> Cost:
    """A rotary embedding's cos/sin table for ``N`` positions (``N`` = elements of ``position_ids``, of which
    ``unique`` are distinct memory: fewer when one row is expanded over the batch; default ``N``): positions and
    the ``c/2`` inverse frequencies (a model-dtype buffer) cast to fp32, their outer product (``N*c/2`` multiplies),
    concat to ``c``, cos, sin, two scalings by ``attention_scaling``, two casts to the model dtype.
    Source: transformers ``DeepseekOcr2VisionRotaryEmbedding``/``DeepseekOcr2TextRotaryEmbedding.forward``.
    Leaves out nothing (computed once per forward and shared by every layer).
    """
    half, n = c // 2, N * c
    return (
        copy(read=(N if unique is None else unique) * I64, written=N * F32)
        + copy(read=half * a, written=half * F32)
        + elementwise(n=N * half, read=N * F32 + half * F32, written=N * half * F32)
        + copy(read=2 * N * half * F32, written=n * F32)
        + elementwise(n=n, read=n * F32, written=n * F32).scaled(4)  # cos, sin, two scalings
        + copy(read=n * F32, written=n * a).scaled(2)
    )


def repeat_kv(*, B: int, L: int, H: int, H_kv: int, c: int, a: int) -> Cost:
    """``repeat_kv`` of K and V from ``H_kv`` to ``H`` heads (an expand read once, then a copy): two copies of
    ``B*H*L*c``; none when ``H == H_kv``.  Source: transformers ``repeat_kv``. Leaves out nothing.
    """
    if H_kv == H:
        return Cost()
    return copy(read=B * H_kv * L * c * a, written=B * H * L * c * a).scaled(2)


def gqa_attention_eager(*, B: int, L: int, H: int, c: int, a: int) -> Cost:
    """Eager attention core after ``repeat_kv``: (``B > 1``) a copy of q, ``QK^T`` (``2*B*H*L^2*c``), the scaling,
    the ``[B, 1, L, L]`` additive mask, fp32 softmax and the cast back, ``PV`` (``2*B*H*L^2*c``), the head merge.
    Source: transformers ``eager_attention_forward``. Leaves out dropout (0 at inference).
    """
    BH, s, n = B * H, B * H * L * L, B * L * H * c
    # RoPE leaves q in the projection's [B, L, H, c] layout: with B > 1 matmul cannot fold batch and heads
    fold = copy(read=n * a, written=n * a) if B > 1 else Cost()
    return (
        fold
        + matmul(b=BH, m=L, k=c, n=L, a_bytes=a, b_bytes=a, out_bytes=a)
        + elementwise(n=s, read=s * a, written=s * a)
        + elementwise(n=s, read=s * a + B * L * L * a, written=s * a)
        + copy(read=s * a, written=s * F32)
        + softmax(n=s, e=F32)
        + copy(read=s * F32, written=s * a)
        + matmul(b=BH, m=L, k=L, n=c, a_bytes=a, b_bytes=a, out_bytes=a)
        + copy(read=n * a, written=n * a)
    )


def gqa_attention_flash(*, B: int, L: int, H: int, c: int, a: int) -> Cost:
    """Fused SDPA after ``repeat_kv`` with the bool ``[B, 1, L, L]`` block mask (read once): dense
    ``4*B*H*L^2*c`` (executed too: an explicit mask is not causal-skipped).
    Source: transformers ``sdpa_attention_forward``; tracer ``sdpa_cost``. Leaves out tile granularity.
    """
    return sdpa(BH=B * H, q=L, k=L, d=c, causal=False, mask_bytes=B * L * L, a=a)
