"""Composition parts every stage of both families uses: the group labels (``core.paths.index_label``,
re-exported), fused-layer charges, the affine decode sum and the SwiGLU MLP."""

from __future__ import annotations

from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.tree import Sink, vec
from llm_perf_opt.core import Cost
from llm_perf_opt.core.paths import index_label

__all__ = ["affine", "index_label", "put_fused", "swiglu"]


def put_fused(tb: Sink, node_id: str, fl: fz.FusedLayer, times: int) -> None:
    """Charge ``times`` calls of a fused layer to ``node_id`` (bytes add up, the working set is a maximum)."""
    tb.add_fused(node_id, fl.nbytes * times)
    tb.set_peak(node_id, fl.live)


def affine(f0: Cost, f1: Cost, *, times: int, sum_k: int) -> tuple[int, ...]:
    """``times*f0 + sum_k*(f1 - f0)`` field by field (``f`` affine in ``k``; ``sum_k`` the sum of ``k``)."""
    return tuple(times * a + sum_k * (b - a) for a, b in zip(vec(f0), vec(f1), strict=True))


def swiglu(tb: Sink, nid: str, *, N: int, d: int, d_ff: int, calls: int, a: int) -> None:
    """A SwiGLU MLP on ``N`` rows, ``calls`` times: three linears, ``act_fn``, and the gating multiply (own)."""
    for name, cost in dec.swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, calls)
        tb.node(f"{nid}.{name}", calls=calls)
    tb.add(f"{nid}.act_fn", "activation", dec.swiglu_silu(N=N, d_ff=d_ff, a=a), calls)
    for name, d_in, d_out in (("gate_proj", d, d_ff), ("up_proj", d, d_ff), ("down_proj", d_ff, d)):
        put_fused(tb, f"{nid}.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), calls)
    tb.node(f"{nid}.act_fn", calls=calls)
    tb.add(nid, "activation", dec.swiglu_mul(N=N, d_ff=d_ff, a=a), calls)
    tb.node(nid, calls=calls)
