"""Handlers for matrix products, convolutions and attention: ``matmul_flops`` (dense) and ``matmul_flops_executed``.

``matmul_flops`` follows torch's FlopCounterMode exactly (mm/addmm/bmm/baddbmm/convolution/SDPA); the bias or
``beta*self`` term of addmm/baddbmm/addmv and a convolution's bias are charged as vector FLOPs (one add per
output element), which FlopCounterMode leaves out.  Executed equals dense everywhere except fused causal
attention (see :func:`sdpa_cost`).
"""

from __future__ import annotations

import torch

from llm_perf_opt.tracer.ops.formulas import (
    causal_score_entries,
    conv_flops,
    grouped_mm_flops,
    matmul_flops,
    sdpa_flops,
)
from llm_perf_opt.tracer.ops.io import OpCall, OpCounts, touched
from llm_perf_opt.tracer.ops.rule import OpTable, add, counted

__all__ = ["MATMUL_RULES", "SOFTMAX_FLOPS_PER_ENTRY", "sdpa_cost"]

SOFTMAX_FLOPS_PER_ENTRY = 5
"""Vector FLOPs per softmax element: max, subtract, exp, sum, divide (the scale is folded into the subtract)."""


def _product(op: OpCall, flops: int, *, vec: int = 0) -> OpCounts:
    """A product: ``flops`` (dense = executed), read every tensor operand, write the output."""
    return OpCounts(mm=flops, vec=vec, reads=op.operands(), writes=op.outputs())


def _mm(op: OpCall) -> OpCounts:
    a, b = op["self"], op["mat2"]
    return _product(op, matmul_flops(m=a.size(0), k=a.size(1), n=b.size(1)))


def _addmm(op: OpCall) -> OpCounts:
    a, b = op["mat1"], op["mat2"]
    return _product(op, matmul_flops(m=a.size(0), k=a.size(1), n=b.size(1)), vec=op.result.numel())  # + beta*self


def _bmm(op: OpCall) -> OpCounts:
    a, b = op["self"], op["mat2"]
    return _product(op, matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2)))


def _baddbmm(op: OpCall) -> OpCounts:
    a, b = op["batch1"], op["batch2"]
    return _product(op, matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2)), vec=op.result.numel())


def _addbmm(op: OpCall) -> OpCounts:
    a, b = op["batch1"], op["batch2"]
    out = op.result.numel()
    # beta*self add + sum over the batch
    return _product(
        op, matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2)), vec=out + (a.size(0) - 1) * out
    )


def _mv(op: OpCall) -> OpCounts:
    a = op["self"]
    return _product(op, matmul_flops(m=a.size(0), k=a.size(1), n=1))


def _addmv(op: OpCall) -> OpCounts:
    a = op["mat"]
    return _product(op, matmul_flops(m=a.size(0), k=a.size(1), n=1), vec=op.result.numel())


def _dot(op: OpCall) -> OpCounts:
    return _product(op, matmul_flops(m=1, k=op["self"].numel(), n=1))


def _grouped_mm(op: OpCall) -> OpCounts:
    a, b, out = op["self"], op["mat2"], op.result
    if a.dim() == 2 and b.dim() == 2:  # groups split K: out [G, M, N]
        flops = grouped_mm_flops(T=a.size(0), K=a.size(1), N=b.size(1))
    else:  # every output row meets one K-long contraction
        flops = grouped_mm_flops(T=out.numel() // out.size(-1), K=a.size(-1), N=out.size(-1))
    return _product(op, flops)


def _convolution(op: OpCall) -> OpCounts:
    x, w, bias, out = op["input"], op["weight"], op["bias"], op.result
    spatial = tuple(x.size())[2:] if op["transposed"] else tuple(out.size())[2:]
    flops = conv_flops(
        N=x.size(0), C_out=w.size(0), C_in_per_group=w.size(1), kernel=tuple(w.size())[2:], out_spatial=spatial
    )
    return OpCounts(
        mm=flops,
        vec=out.numel() if bias is not None else 0,
        reads=touched((x, w, bias)),
        writes=op.outputs(),
    )


def sdpa_cost(
    *,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    out: torch.Tensor,
) -> OpCounts:
    """Fused scaled-dot-product attention as one kernel.

    FLOPs: dense ``4*BH*L*S*E`` (``2*BH*L*S*(E+Ev)``, FlopCounterMode's SDPA count) in ``mm``; in ``mm_exec`` the
    causal-effective count (``causal_score_entries``) when ``is_causal`` and no mask is given, else dense.
    Vector FLOPs: softmax 5 per executed score entry, plus 1 per entry for an additive ``attn_mask``.
    Bytes: read Q, K, V (and the mask, stride-0 dims once), write the output; the L x S scores are never
    materialised (the point of fusing).  Leaves out dropout (0 at inference).
    """
    L, E = query.size(-2), query.size(-1)
    S, Ev = key.size(-2), value.size(-1)
    BH = query.numel() // (L * E) if L * E else 0
    dense = sdpa_flops(BH=BH, L=L, S=S, E=E, Ev=Ev)
    causal = is_causal and attn_mask is None
    entries = causal_score_entries(q=L, k=S) if causal else L * S
    return OpCounts(
        mm=dense,
        mm_exec=sdpa_flops(BH=BH, L=L, S=S, E=E, Ev=Ev, entries=entries) if causal else dense,
        vec=BH * entries * (SOFTMAX_FLOPS_PER_ENTRY + (1 if attn_mask is not None else 0)),
        reads=touched((query, key, value, attn_mask)),
        writes=((out, -1),),
    )


def _aten_sdpa(op: OpCall) -> OpCounts:
    """An aten SDPA kernel: its additive mask is ``attn_bias`` (efficient, cuDNN), ``attn_mask`` (CPU flash) or none."""
    return sdpa_cost(
        query=op["query"],
        key=op["key"],
        value=op["value"],
        attn_mask=op.first_of("attn_bias", "attn_mask"),
        is_causal=bool(op["is_causal"]),
        out=op.result,
    )


_SDPA = "fused SDPA: see sdpa_cost"
_MM = "2*m*k*n (FlopCounterMode); read operands, write output"
_BIAS = "2*m*k*n (FlopCounterMode) + one add per output element for the bias/beta term"
MATMUL_RULES: OpTable = {}
add(MATMUL_RULES, ["mm"], counted("matmul", _MM, "linear", _mm))
add(MATMUL_RULES, ["addmm"], counted("matmul", _BIAS, "linear", _addmm))
add(
    MATMUL_RULES, ["bmm"], counted("matmul", "2*b*m*k*n (FlopCounterMode); read operands, write output", "linear", _bmm)
)
add(MATMUL_RULES, ["baddbmm"], counted("matmul", _BIAS, "linear", _baddbmm))
add(MATMUL_RULES, ["addbmm"], counted("matmul", _BIAS + " and the batch reduction", "linear", _addbmm))
add(MATMUL_RULES, ["mv"], counted("matmul", "2*m*k", "linear", _mv))
add(MATMUL_RULES, ["addmv"], counted("matmul", "2*m*k + bias add", "linear", _addmv))
add(MATMUL_RULES, ["dot"], counted("matmul", "2*k", "linear", _dot))
add(MATMUL_RULES, ["vdot"], counted("matmul", "2*k", "linear", _dot))
add(
    MATMUL_RULES,
    ["_grouped_mm"],
    counted("matmul", "2*T*K*N over all groups (FlopCounterMode counts 0)", "linear", _grouped_mm),
)
add(
    MATMUL_RULES,
    ["convolution"],
    counted("conv", "2*N*C_out*C_in/g*prod(kernel)*prod(out) (FlopCounterMode) + bias", "conv2d", _convolution),
)
add(MATMUL_RULES, ["_convolution"], counted("conv", "as convolution", "conv2d", _convolution))
add(
    MATMUL_RULES,
    ["_scaled_dot_product_efficient_attention"],
    counted("attention", _SDPA, "attention", _aten_sdpa),
)
add(MATMUL_RULES, ["_scaled_dot_product_flash_attention"], counted("attention", _SDPA, "attention", _aten_sdpa))
add(
    MATMUL_RULES,
    ["_scaled_dot_product_flash_attention_for_cpu"],
    counted("attention", _SDPA, "attention", _aten_sdpa),
)
add(MATMUL_RULES, ["_scaled_dot_product_cudnn_attention"], counted("attention", _SDPA, "attention", _aten_sdpa))
