"""SAM ViT-B image encoder (model-facts §2.1, §3.7): closed forms per node, eager op-level convention.

Symbols (one ``ImageEncoderViT`` call on a batch of views): ``B`` views, ``R`` view side (px), ``p`` patch size,
``g = R/p`` patch-grid side, ``P`` side of the absolute position table (64), ``D`` width (768), ``h`` heads,
``c = D/h`` head width, ``m`` MLP width (3072), ``w`` window side (14), ``gp = w*ceil(g/w)`` padded grid,
``nw = (gp/w)^2`` windows per view, ``s`` side of the token grid an attention call sees (``w`` windowed, ``g``
global), ``T = s^2`` tokens per attention batch item, ``Bw`` attention batch (``B*nw`` windowed, ``B`` global),
``a`` bytes per activation element.  model-facts §3.7 closed forms (matmul only) are the sums of these nodes.
"""

from __future__ import annotations

from math import ceil

from llm_perf_opt.analytic.formulas.common import (
    ACT_FLOPS,
    F32,
    I64,
    conv2d,
    copy,
    elementwise,
    fill,
    gather,
    interpolate,
    layer_norm,
    linear,
    op,
    reduction,
    sdpa,
    sdpa_math,
)
from llm_perf_opt.core import Cost

__all__ = [
    "aa_taps",
    "abs_pos_add",
    "abs_pos_resize",
    "attention_core",
    "block_linears",
    "block_norm",
    "gelu",
    "layer_norm2d",
    "net_clone",
    "padded_grid",
    "patch_conv",
    "rel_pos_table",
    "rel_pos_terms",
    "residual_add",
    "window_copies",
]


def padded_grid(*, g: int, w: int) -> int:
    """``gp = w*ceil(g/w)``: the grid side after zero-padding to whole windows (40 -> 42, 64 -> 70).

    Source: model-facts §2.1 (windows padded to a multiple of 14). Leaves out nothing: pure arithmetic.
    """
    return w * ceil(g / w)


def aa_taps(*, n_in: int, n_out: int, taps_1d: int) -> int:
    """Taps per output of one dimension of an antialiased resize: ``ceil(taps_1d * n_in/n_out)`` when shrinking,
    else ``taps_1d`` (the tracer's ``interpolate_taps``; bicubic 64 -> 40 is ``ceil(6.4) = 7``).
    Leaves out boundary taps.
    """
    scale = n_in / n_out if n_in > n_out else 1.0
    return ceil(taps_1d * scale)


def patch_conv(*, B: int, R: int, p: int, C_in: int, D: int, a: int) -> Cost:
    """Patch embedding conv ``C_in -> D``, kernel = stride = ``p``, with bias: ``2*B*g^2*D*C_in*p^2``.

    model-facts §3.7: ``2*B*g^2*768*768`` (3*16*16 = 768 inputs per output).  The permute to channels-last is a view.
    Leaves out the permute to channels-last (a view).
    """
    g = R // p
    return conv2d(B=B, C_in=C_in, C_out=D, H_in=R, W_in=R, H_out=g, W_out=g, kh=p, kw=p, bias=True, a=a)


def abs_pos_resize(*, g: int, P: int, D: int, a: int) -> Cost:
    """Absolute position table ``[1,P,P,D]`` resized to ``g x g`` (bicubic, antialias, fp32): 0 when ``g == P``.

    Ops: cast to fp32 (read the table as weight bytes), ``_upsample_bicubic2d_aa`` (2 FLOPs per tap, taps per
    dimension :func:`aa_taps`), cast back.  Source: ``get_abs_pos_sam`` (model-facts §2.1).
    Leaves out the resize's boundary taps.
    """
    if g == P:
        return Cost()
    taps = aa_taps(n_in=P, n_out=g, taps_1d=4) ** 2
    table, small = P * P * D, g * g * D
    return (
        copy(read=table * a, written=table * F32, weight=table * a)
        + interpolate(taps=taps, n_out=small, read=table * F32, written=small * F32)
        + copy(read=small * F32, written=small * a)
    )


def abs_pos_add(*, B: int, g: int, P: int, D: int, a: int) -> Cost:
    """``x + pos``: ``B*g^2*D`` adds; the ``[1,g,g,D]`` table is read once (weight bytes when not resized).

    Source: ``ImageEncoderViT.forward`` (model-facts §2.1). Leaves out nothing.
    """
    n, table = B * g * g * D, g * g * D * a
    return elementwise(n=n, read=n * a + table, written=n * a, weight=table if g == P else 0)


def residual_add(*, n: int, a: int) -> Cost:
    """A residual ``x + y`` over ``n`` elements: ``n`` FLOPs, read ``2*n*a``, write ``n*a``.

    Source: ``Block.forward`` (model-facts §2.1). Leaves out nothing.
    """
    return elementwise(n=n, read=2 * n * a, written=n * a)


def window_copies(*, B: int, g: int, w: int, D: int, a: int) -> Cost:
    """Window partition and un-partition around a windowed attention (``window_partition``/``window_unpartition``).

    Pad ``g -> gp`` (``constant_pad_nd``, only if ``gp > g``), the permuted copy into windows and back (two clones
    of ``B*gp^2*D``, skipped when there is a single window), and the copy that crops the padding (if any).
    Source: ``window_partition``/``window_unpartition`` (model-facts §2.1). Leaves out nothing.
    """
    gp = padded_grid(g=g, w=w)
    full, padded = B * g * g * D * a, B * gp * gp * D * a
    cost = Cost()
    if gp > g:
        cost += copy(read=full, written=padded) + copy(read=full, written=full)
    if gp > w:
        cost += copy(read=padded, written=padded).scaled(2)
    return cost


def rel_pos_table(*, s: int, rows: int, c: int, a: int) -> Cost:
    """One ``get_rel_pos``: the rel-pos rows ``[s, s, c]`` for every (query, key) offset of an ``s``-grid.

    A table whose length ``rows`` differs from ``2s-1`` is first cast to fp32, linearly interpolated
    (``upsample_linear1d``, 2 taps) to ``2s-1`` rows and cast back.  Then the offset grid: two ``arange`` (int64),
    two scalings (fp32), a subtract and an add over ``s^2``, a cast to int64 and the gather of ``s^2`` rows (weight
    bytes when the table is used as is).  Source: ``get_rel_pos`` (model-facts §2.1).
    Leaves out the Python-side shape logic.
    """
    span = 2 * s - 1
    cost = Cost()
    if rows != span:
        cost += (
            copy(read=rows * c * a, written=rows * c * F32, weight=rows * c * a)
            + interpolate(taps=2, n_out=span * c, read=rows * c * F32, written=span * c * F32)
            + copy(read=span * c * F32, written=span * c * a)
        )
    coords = (fill(written=s * I64) + elementwise(n=s, read=s * I64, written=s * F32)).scaled(2)
    offsets = (
        elementwise(n=s * s, read=2 * s * F32, written=s * s * F32)
        + elementwise(n=s * s, read=s * s * F32, written=s * s * F32)
        + copy(read=s * s * F32, written=s * s * I64)
    )
    rows_bytes = s * s * c * a
    return cost + coords + offsets + gather(rows_bytes=rows_bytes, index_bytes=s * s * I64, weight=rows == span)


def rel_pos_terms(*, Bw: int, h: int, s: int, c: int, a: int) -> Cost:
    """The decomposed rel-pos bias of one attention call (``add_decomposed_rel_pos``), after the two tables.

    Two einsums ``q . R`` (``bmm`` of ``[s, Bw*h*s, c] x [s, c, s]``: ``2*Bw*h*s^3*c`` each, model-facts §3.7
    ``4*B*nw*12*t*14*64`` for both), the copies of q the einsums make (the first always; the second too when
    ``Bw == 1``, where q is still a strided view of the qkv output), the two reshaping copies of the terms and the
    broadcast add into the ``[Bw*h, T, T]`` bias (``T = s^2``).
    Leaves out nothing.
    """
    BH, T = Bw * h, s * s
    q_bytes, r_bytes, term = BH * T * c * a, s * s * c * a, BH * T * s * a
    einsum = op(mm=2 * BH * T * s * c, read=q_bytes + r_bytes, written=term)
    bias = elementwise(n=BH * T * T, read=2 * term, written=BH * T * T * a)
    q_copies = copy(read=q_bytes, written=q_bytes).scaled(1 if Bw > 1 else 2)
    return q_copies + einsum.scaled(2) + copy(read=term, written=term).scaled(2) + bias


def attention_core(*, Bw: int, h: int, s: int, c: int, a: int, eager: bool) -> Cost:
    """What ``Attention.forward`` runs besides qkv/proj and the rel-pos terms.

    The head-split copy of the qkv output (``3*Bw*T*D``; a view when ``Bw == 1``), then SDPA with the additive
    ``[Bw*h, T, T]`` rel-pos mask (``4*Bw*h*T^2*c`` dense, model-facts §3.7 ``4*B*nw*12*t^2*64``).
    ``eager=False``: one fused kernel (6 vector FLOPs per score: softmax + mask add), whose output layout makes the
    head merge a view.  ``eager=True``: torch's math decomposition (``common.sdpa_math``) and the head-merge
    copy.  Leaves out the backend choice on a real GPU (the mask rules out flash kernels).
    """
    T, D = s * s, h * c
    qkv, out, mask = 3 * Bw * T * D * a, Bw * T * D * a, Bw * h * T * T * a
    split = copy(read=qkv, written=qkv) if Bw > 1 else Cost()
    if eager:
        core = Cost.total(sdpa_math(BH=Bw * h, q=T, k=T, d=c, mask_bytes=mask, a=a, fold_copies=False).values())
        return split + core + copy(read=out, written=out)
    return split + sdpa(BH=Bw * h, q=T, k=T, d=c, causal=False, mask_bytes=mask, a=a)


def gelu(*, n: int, a: int) -> Cost:
    """Exact (erf) GELU over ``n`` elements: 5 FLOPs each, read and write ``n*a``.

    Source: tracer ``ACTIVATION_FLOPS['gelu']``; model-facts §2.1 (``nn.GELU``, erf form).
    Leaves out the cost of erf relative to a multiply.
    """
    return elementwise(n=n, flops=ACT_FLOPS["gelu"], read=n * a, written=n * a)


def layer_norm2d(*, B: int, C: int, H: int, W: int, a: int) -> Cost:
    """``LayerNorm2d`` as written upstream: mean, subtract, square, mean, subtract again, +eps, sqrt, divide,
    scale, shift - ten ops over ``n = B*C*H*W`` (reductions over ``C`` into ``r = B*H*W``).

    FLOPs ``8n + 4r`` (the affine scale and shift included); each affine vector is read once (``C*a``).
    Source: upstream ``LayerNorm2d`` as written (model-facts §2.1). Leaves out nothing.
    """
    n, r = B * C * H * W, B * H * W
    mean = reduction(n_in=n, n_out=r, in_bytes=a, out_bytes=a, mean=True)
    sub = elementwise(n=n, read=n * a + r * a, written=n * a)
    return (
        mean
        + sub
        + elementwise(n=n, read=n * a, written=n * a)  # pow(2)
        + mean
        + sub
        + elementwise(n=r, read=r * a, written=r * a).scaled(2)  # + eps, sqrt
        + elementwise(n=n, read=n * a + r * a, written=n * a)  # divide
        + elementwise(n=n, read=n * a + C * a, written=n * a, weight=C * a).scaled(2)  # scale, shift
    )


def net_clone(*, B: int, C: int, H: int, a: int) -> Cost:
    """The ``x2.clone()`` between ``net_2`` and ``net_3``: read and write ``B*C*H^2*a``.

    Source: the built-in model's ``net_3(x2.clone())``. Leaves out nothing.
    """
    n = B * C * H * H * a
    return copy(read=n, written=n)


def block_linears(*, N_attn: int, N_mlp: int, D: int, m: int, a: int) -> dict[str, Cost]:
    """The four linears of one block: qkv and proj on ``N_attn`` (padded) rows, lin1/lin2 on ``N_mlp`` rows.

    model-facts §3.7: ``2*B*gp^2*(768*2304 + 768^2)`` windowed (``2*B*g^2*...`` global) + ``2*B*g^2*2*768*3072``.
    Leaves out the bias adds' fusion into addmm.
    """
    return {
        "attn.qkv": linear(N=N_attn, d_in=D, d_out=3 * D, bias=True, a=a, w=a),
        "attn.proj": linear(N=N_attn, d_in=D, d_out=D, bias=True, a=a, w=a),
        "mlp.lin1": linear(N=N_mlp, d_in=D, d_out=m, bias=True, a=a, w=a),
        "mlp.lin2": linear(N=N_mlp, d_in=m, d_out=D, bias=True, a=a, w=a),
    }


def block_norm(*, N: int, D: int, a: int) -> Cost:
    """``norm1``/``norm2``: LayerNorm over ``N`` rows of ``D`` (weight and bias).

    Source: model-facts §2.1 (``norm1``/``norm2``, LayerNorm eps 1e-6). Leaves out nothing.
    """
    return layer_norm(N=N, d=D, a=a)
