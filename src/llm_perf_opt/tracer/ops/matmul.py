"""Handlers for matrix products, convolutions and attention: ``matmul_flops`` (dense) and ``matmul_flops_executed``.

``matmul_flops`` follows torch's FlopCounterMode exactly (mm/addmm/bmm/baddbmm/convolution/SDPA); the bias or
``beta*self`` term of addmm/baddbmm/addmv and a convolution's bias are charged as vector FLOPs (one add per
output element), which FlopCounterMode leaves out.  Executed equals dense everywhere except fused causal
attention (see :func:`sdpa_cost`).
"""

from __future__ import annotations

from typing import Any

import torch

from llm_perf_opt.tracer.ops.formulas import (
    causal_score_entries,
    conv_flops,
    grouped_mm_flops,
    matmul_flops,
    sdpa_flops,
)
from llm_perf_opt.tracer.ops.io import OpIO
from llm_perf_opt.tracer.ops.rule import Handler, OpTable, add, counted

__all__ = ["MATMUL_RULES", "SOFTMAX_FLOPS_PER_ENTRY", "sdpa_cost"]

SOFTMAX_FLOPS_PER_ENTRY = 5
"""Vector FLOPs per softmax element: max, subtract, exp, sum, divide (the scale is folded into the subtract)."""


def _io(io: OpIO, args: tuple[Any, ...], out: Any) -> None:
    io.read_all(args)
    io.write_all(out)


def _mm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[0], args[1]
    io.mm = io.mm_exec = matmul_flops(m=a.size(0), k=a.size(1), n=b.size(1))
    _io(io, args, out)


def _addmm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[1], args[2]
    io.mm = io.mm_exec = matmul_flops(m=a.size(0), k=a.size(1), n=b.size(1))
    io.vec = out.numel()  # + bias (beta * self)
    _io(io, args, out)


def _bmm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[0], args[1]
    io.mm = io.mm_exec = matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2))
    _io(io, args, out)


def _baddbmm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[1], args[2]
    io.mm = io.mm_exec = matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2))
    io.vec = out.numel()
    _io(io, args, out)


def _addbmm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[1], args[2]
    io.mm = io.mm_exec = matmul_flops(b=a.size(0), m=a.size(1), k=a.size(2), n=b.size(2))
    io.vec = out.numel() + (a.size(0) - 1) * out.numel()  # beta*self add + sum over the batch
    _io(io, args, out)


def _mv(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a = args[0]
    io.mm = io.mm_exec = matmul_flops(m=a.size(0), k=a.size(1), n=1)
    _io(io, args, out)


def _addmv(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a = args[1]
    io.mm = io.mm_exec = matmul_flops(m=a.size(0), k=a.size(1), n=1)
    io.vec = out.numel()
    _io(io, args, out)


def _dot(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    io.mm = io.mm_exec = matmul_flops(m=1, k=args[0].numel(), n=1)
    _io(io, args, out)


def _grouped_mm(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    a, b = args[0], args[1]
    if a.dim() == 2 and b.dim() == 2:  # groups split K: out [G, M, N]
        flops = grouped_mm_flops(T=a.size(0), K=a.size(1), N=b.size(1))
    else:  # every output row meets one K-long contraction
        flops = grouped_mm_flops(T=out.numel() // out.size(-1), K=a.size(-1), N=out.size(-1))
    io.mm = io.mm_exec = flops
    _io(io, args, out)


def _convolution(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    x, w, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else False
    spatial = tuple(x.size())[2:] if transposed else tuple(out.size())[2:]
    c_out, c_in = w.size(0), w.size(1)
    io.mm = io.mm_exec = conv_flops(
        N=x.size(0), C_out=c_out, C_in_per_group=c_in, kernel=tuple(w.size())[2:], out_spatial=spatial
    )
    if bias is not None:
        io.vec = out.numel()
    _io(io, (x, w, bias), out)


def sdpa_cost(
    io: OpIO,
    *,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    out: torch.Tensor,
) -> None:
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
    io.mm = dense
    io.mm_exec = sdpa_flops(BH=BH, L=L, S=S, E=E, Ev=Ev, entries=entries) if causal else dense
    io.vec = BH * entries * (SOFTMAX_FLOPS_PER_ENTRY + (1 if attn_mask is not None else 0))
    for t in (query, key, value, attn_mask):
        if t is not None:
            io.read(t)
    io.write(out)


def _aten_sdpa(mask_at: int | None, causal_at: int) -> Handler:
    """Handler for an aten SDPA kernel whose mask and ``is_causal`` sit at these positions (None: kwarg only)."""

    def handler(io: OpIO, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        mask = args[mask_at] if mask_at is not None and len(args) > mask_at else kwargs.get("attn_mask")
        causal = bool(args[causal_at]) if len(args) > causal_at else bool(kwargs.get("is_causal", False))
        first = out[0] if isinstance(out, tuple | list) else out
        sdpa_cost(io, query=args[0], key=args[1], value=args[2], attn_mask=mask, is_causal=causal, out=first)

    return handler


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
    counted("attention", _SDPA, "attention", _aten_sdpa(3, 6)),
)
add(
    MATMUL_RULES, ["_scaled_dot_product_flash_attention"], counted("attention", _SDPA, "attention", _aten_sdpa(None, 4))
)
add(
    MATMUL_RULES,
    ["_scaled_dot_product_flash_attention_for_cpu"],
    counted("attention", _SDPA, "attention", _aten_sdpa(None, 4)),
)
add(MATMUL_RULES, ["_scaled_dot_product_cudnn_attention"], counted("attention", _SDPA, "attention", _aten_sdpa(3, 6)))
