"""CLIP-L encoder fed with SAM features (model-facts §2.2, §3.7): closed forms per node, eager op-level convention.

Symbols (one ``VitModel`` call): ``B`` views, ``t`` side of the SAM feature grid (16 at 1024 px, 10 at 640 px),
``n = t^2`` patch tokens, ``L = n + 1`` tokens with CLS, ``P`` side of the position grid (224/14 = 16), ``D`` width
(1024), ``H`` heads, ``c = D/H``, ``F`` MLP width (4096), ``a`` bytes per element.  model-facts §3.7:
``24*[2*B*L*(1024*3072 + 1024^2 + 2*1024*4096) + 4*B*16*L^2*64]`` is the sum of the layer nodes below.
"""

from __future__ import annotations

from llm_perf_opt.analytic.formulas.common import (
    ACT_FLOPS,
    F32,
    I64,
    copy,
    elementwise,
    gather,
    interpolate,
    layer_norm,
    linear,
    sdpa,
    sdpa_math,
)
from llm_perf_opt.analytic.formulas.sam import aa_taps
from llm_perf_opt.core import Cost

__all__ = [
    "attention_core",
    "embeddings_own",
    "layer_linears",
    "layer_norm_clip",
    "position_lookup",
    "quick_gelu",
    "residual_add",
]


def position_lookup(*, P: int, D: int, a: int) -> Cost:
    """``position_embedding(position_ids)``: gather all ``P^2 + 1`` rows (weight bytes) with an int64 index.

    Source: model-facts §2.2 (``Embedding(257, 1024)`` with ``position_ids``). Leaves out nothing.
    """
    rows = P * P + 1
    return gather(rows_bytes=rows * D * a, index_bytes=rows * I64, weight=True)


def embeddings_own(*, B: int, t: int, P: int, D: int, a: int) -> Cost:
    """``CLIPVisionEmbeddings`` minus the table lookup: CLS concat, position-table resize, position add.

    Concat ``[CLS ; SAM tokens]`` (CLS read once, a weight); when ``t != P`` the grid part of the table is copied,
    cast to fp32, resized ``P x P -> t x t`` (bicubic antialias: ``2*taps*D*t^2`` FLOPs), cast back and concatenated
    after the CLS row (``get_abs_pos``); then ``B*L*D`` adds with the ``[1, L, D]`` table read once.
    Source: ``CLIPVisionEmbeddings.forward`` / ``get_abs_pos`` (model-facts §2.2).
    Leaves out the unused patch conv (never runs).
    """
    n, L = t * t, t * t + 1
    cost = copy(read=D * a + B * n * D * a, written=B * L * D * a, weight=D * a)
    if t != P:
        grid = P * P * D
        taps = aa_taps(n_in=P, n_out=t, taps_1d=4) ** 2
        cost += (
            copy(read=grid * a, written=grid * a)
            + copy(read=grid * a, written=grid * F32)
            + interpolate(taps=taps, n_out=n * D, read=grid * F32, written=n * D * F32)
            + copy(read=n * D * F32, written=n * D * a)
            + copy(read=L * D * a, written=L * D * a)
        )
    return cost + elementwise(n=B * L * D, read=B * L * D * a + L * D * a, written=B * L * D * a)


def layer_norm_clip(*, B: int, L: int, D: int, a: int) -> Cost:
    """``pre_layrnorm`` / ``layer_norm1`` / ``layer_norm2``: LayerNorm over ``B*L`` rows of ``D``.

    Source: model-facts §2.2 (LayerNorm eps 1e-5). Leaves out nothing.
    """
    return layer_norm(N=B * L, d=D, a=a)


def layer_linears(*, B: int, L: int, D: int, F: int, a: int) -> dict[str, Cost]:
    """The four linears of one layer (bias everywhere): ``2*B*L*(D*3D + D^2 + 2*D*F)`` matmul FLOPs in total.

    Source: model-facts §2.2, §3.7. Leaves out nothing.
    """
    N = B * L
    return {
        "self_attn.qkv_proj": linear(N=N, d_in=D, d_out=3 * D, bias=True, a=a, w=a),
        "self_attn.out_proj": linear(N=N, d_in=D, d_out=D, bias=True, a=a, w=a),
        "mlp.fc1": linear(N=N, d_in=D, d_out=F, bias=True, a=a, w=a),
        "mlp.fc2": linear(N=N, d_in=F, d_out=D, bias=True, a=a, w=a),
    }


def attention_core(*, B: int, L: int, H: int, c: int, a: int, eager: bool) -> dict[str, Cost]:
    """``NoTPAttention`` besides its linears: non-causal SDPA without mask over ``L`` tokens (``4*B*H*L^2*c``).

    Split by op-family category: upstream's block calls ``self_attn.forward`` directly, so these ops run in the
    block (a class without a category) and take their op family's.  ``eager=False``: one fused kernel (5 vector
    FLOPs per score, ``attention``), whose output layout makes the head merge a view.  ``eager=True``: torch's math
    decomposition (Q, K^T, V copied before the products when ``B > 1``: the split heads cannot be folded into the
    batch) and the head-merge copy of the output.
    Source: model-facts §2.2; ``NoTPAttention.forward``. Leaves out dropout (0).
    """
    if not eager:
        return {"attention": sdpa(BH=B * H, q=L, k=L, d=c, causal=False, mask_bytes=0, a=a)}
    out = B * L * H * c * a
    parts = sdpa_math(BH=B * H, q=L, k=L, d=c, mask_bytes=0, a=a, fold_copies=B > 1)
    parts["data_movement"] = parts["data_movement"] + copy(read=out, written=out)
    return parts


def quick_gelu(*, N: int, F: int, a: int) -> dict[str, Cost]:
    """``x * sigmoid(1.702 x)`` over ``N*F`` elements as three ops: scale (1) and multiply (1) are elementwise,
    sigmoid (4) an activation (the block calls ``mlp.forward`` directly, so op families decide the category).
    Source: upstream ``quick_gelu`` (model-facts §2.2).
    Leaves out TorchScript fusion (upstream scripts it; the ops are the same).
    """
    n = N * F
    scale_mul = elementwise(n=n, read=n * a, written=n * a) + elementwise(n=n, read=2 * n * a, written=n * a)
    return {
        "elementwise": scale_mul,
        "activation": elementwise(n=n, flops=ACT_FLOPS["sigmoid"], read=n * a, written=n * a),
    }


def residual_add(*, n: int, a: int) -> Cost:
    """A residual add over ``n`` elements.

    Source: ``NoTPTransformerBlock.forward``. Leaves out nothing.
    """
    return elementwise(n=n, read=2 * n * a, written=n * a)
