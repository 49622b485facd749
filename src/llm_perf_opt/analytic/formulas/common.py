"""Primitive op costs shared by every layer family, in the tracer's eager op-level convention.

Two byte conventions live side by side (docs/architecture.md, docs/conventions.md):

* **Eager op-level** (every :class:`~llm_perf_opt.core.Cost` returned here and by the family modules): one entry
  per aten op the eager model runs, exactly as ``llm_perf_opt.tracer.ops`` charges it.  Each op reads every tensor
  operand once (a broadcast, stride-0 dimension once) and writes every output in full; views are free; a gather
  reads the rows it selects; a KV append writes the new positions only.  This is an upper bound on the traffic of
  fused kernels, and it is what the trace is validated against.
* **Fused-kernel** (:func:`fused_bytes`, used by the time model): one kernel per fused layer reads its weights and
  its inputs once and writes its outputs once; intermediates (scores, casts, activation outputs) stay on chip.

FLOPs: 2 per multiply-accumulate.  ``matmul_flops`` follows torch's ``FlopCounterMode`` (attention dense);
``matmul_flops_executed`` differs only for fused causal attention.  Vector FLOPs use the tracer's per-element
factors, repeated here as named constants.  Symbols: ``N`` rows (tokens), ``d_in``/``d_out`` widths, ``a`` bytes per
activation element, ``w`` bytes per weight element, ``f`` bytes of a float32 element (4), ``i`` of an int64 (8).
"""

from __future__ import annotations

from math import ceil, log2

from llm_perf_opt.core import Cost

__all__ = [
    "ACT_FLOPS",
    "F32",
    "I64",
    "LAYER_NORM_FLOPS",
    "SOFTMAX_FLOPS",
    "causal_entries",
    "conv2d",
    "copy",
    "elementwise",
    "fill",
    "fused_bytes",
    "gather",
    "interpolate",
    "layer_norm",
    "linear",
    "matmul",
    "op",
    "reduction",
    "sdpa",
    "sdpa_math",
    "softmax",
    "sort",
    "topk",
]

F32 = 4
"""Bytes per float32 element."""
I64 = 8
"""Bytes per int64 element."""
SOFTMAX_FLOPS = 5
"""Vector FLOPs per softmax element: max, subtract, exp, sum, divide (tracer ``SOFTMAX_FLOPS_PER_ENTRY``)."""
LAYER_NORM_FLOPS = 5
"""LayerNorm FLOPs per element before the affine terms: mean, subtract, square+sum (2), scale by rstd."""
ACT_FLOPS = {"gelu": 5, "silu": 5, "sigmoid": 4}
"""Activation FLOPs per element: erf-GELU 0.5x(1+erf(x/sqrt2)) 5; SiLU x*sigmoid(x) 5; sigmoid 1/(1+exp(-x)) 4."""


def op(
    *,
    mm: int = 0,
    mm_exec: int | None = None,
    vec: int = 0,
    read: int = 0,
    written: int = 0,
    weight: int = 0,
    kv_read: int = 0,
    kv_written: int = 0,
    kernels: int = 1,
) -> Cost:
    """One counted op (``kernels`` launches) with its counters; ``mm_exec`` defaults to ``mm``.

    Source: docs/conventions.md counters. Leaves out nothing: it only packs the counters.
    """
    return Cost(
        matmul_flops=mm,
        matmul_flops_executed=mm if mm_exec is None else mm_exec,
        vector_flops=vec,
        bytes_read=read,
        bytes_written=written,
        weight_bytes_read=weight,
        kv_bytes_read=kv_read,
        kv_bytes_written=kv_written,
        kernels=kernels,
    )


def linear(*, N: int, d_in: int, d_out: int, bias: bool, a: int, w: int) -> Cost:
    """``nn.Linear`` on ``N`` rows: one ``addmm`` (bias) or ``mm`` (no bias).

    matmul ``2*N*d_in*d_out``; vector ``N*d_out`` bias adds; read ``N*d_in*a + d_in*d_out*w (+ d_out*w)``,
    written ``N*d_out*a``; weight bytes = the weight (and bias) once.  Source: FlopCounterMode mm/addmm; tracer
    ``_addmm``/``_mm``.  Leaves out any reshape (views are free).
    """
    weight_bytes = d_in * d_out * w + (d_out * w if bias else 0)
    return op(
        mm=2 * N * d_in * d_out,
        vec=N * d_out if bias else 0,
        read=N * d_in * a + weight_bytes,
        written=N * d_out * a,
        weight=weight_bytes,
    )


def matmul(
    *,
    b: int,
    m: int,
    k: int,
    n: int,
    a_bytes: int,
    b_bytes: int,
    out_bytes: int,
    kv_a: bool = False,
    kv_b: bool = False,
) -> Cost:
    """A batched product ``[b,m,k] @ [b,k,n]`` of two activations (``bmm``): ``2*b*m*k*n``.

    Read ``b*m*k*a_bytes + b*k*n*b_bytes`` (either may be KV-cache memory), write ``b*m*n*out_bytes``.
    Source: FlopCounterMode bmm; tracer ``_bmm``. Leaves out the expand/reshape views around it (free).
    """
    left, right = b * m * k * a_bytes, b * k * n * b_bytes
    return op(
        mm=2 * b * m * k * n,
        read=left + right,
        written=b * m * n * out_bytes,
        kv_read=(left if kv_a else 0) + (right if kv_b else 0),
    )


def conv2d(
    *, B: int, C_in: int, C_out: int, H_in: int, W_in: int, H_out: int, W_out: int, kh: int, kw: int, bias: bool, a: int
) -> Cost:
    """``nn.Conv2d`` (groups 1): ``2*B*H_out*W_out*C_out*C_in*kh*kw`` (FlopCounterMode ``conv_flop_count``).

    Vector ``B*C_out*H_out*W_out`` for a bias; read input + weight (+ bias), write output; weights at ``a`` bytes.
    Leaves out padding (padded taps are counted, as torch does).
    Source: FlopCounterMode ``conv_flop_count``; tracer ``_convolution``.
    """
    weight_bytes = (C_out * C_in * kh * kw + (C_out if bias else 0)) * a
    out = B * C_out * H_out * W_out
    return op(
        mm=2 * out * C_in * kh * kw,
        vec=out if bias else 0,
        read=B * C_in * H_in * W_in * a + weight_bytes,
        written=out * a,
        weight=weight_bytes,
    )


def causal_entries(*, q: int, k: int) -> int:
    """Score entries a causal kernel computes for the last ``q`` of ``k`` positions: ``q*k - q*(q-1)/2``.

    Source: tracer ``causal_score_entries``. Leaves out tile granularity of real flash kernels.
    """
    return q * k - q * (q - 1) // 2


def sdpa(
    *, BH: int, q: int, k: int, d: int, causal: bool, mask_bytes: int, a: int, kv: bool = False, extra_vec: int = 0
) -> Cost:
    """Fused ``F.scaled_dot_product_attention`` (one kernel) over ``BH`` heads of ``q`` queries and ``k`` keys.

    matmul dense ``4*BH*q*k*d`` (QK^T and PV); executed ``4*BH*e*d`` with ``e = causal_entries`` when causal (and no
    mask), else ``q*k``.  Vector ``BH*e*5`` softmax (+1 per entry with an additive mask, ``mask_bytes > 0``).
    Bytes: read Q, K, V once and the mask (``mask_bytes``), write the output; the scores are never stored.
    ``kv``: K and V are KV-cache memory.  Source: tracer ``sdpa_cost``; FlopCounterMode SDPA.
    Leaves out dropout (0 at inference) and tile granularity.
    """
    entries = causal_entries(q=q, k=k) if causal else q * k
    kv_bytes = 2 * BH * k * d * a
    return op(
        mm=4 * BH * q * k * d,
        mm_exec=4 * BH * entries * d,
        vec=BH * entries * (SOFTMAX_FLOPS + (1 if mask_bytes else 0)) + extra_vec,
        read=BH * q * d * a + kv_bytes + mask_bytes,
        written=BH * q * d * a,
        kv_read=kv_bytes if kv else 0,
    )


def sdpa_math(*, BH: int, q: int, k: int, d: int, mask_bytes: int, a: int, fold_copies: bool) -> dict[str, Cost]:
    """``F.scaled_dot_product_attention`` run as torch's math decomposition (eager tracing of SAM/CLIP), split by
    the tracer's op-family categories (used where the ops run in a module class with no category of its own).

    fp32 casts of Q, K, V; Q and K^T each scaled by ``d^-1/4``; ``QK^T`` in fp32 (``2*BH*q*k*d``); the mask add
    (if any); ``_safe_softmax`` (5 per score); a cast of the probabilities to the activation dtype (unused by the
    next op); ``PV`` in fp32 (``2*BH*q*k*d``); the cast of the output back.  ``fold_copies``: Q, K^T and V are
    copied before their products because their batch and head dimensions cannot be folded into one (a
    non-contiguous layout with more than one batch item).  Source: torch ``_scaled_dot_product_attention_math``.
    Leaves out dropout (0 at inference).
    """
    nq, nk, s = BH * q * d, BH * k * d, BH * q * k
    moves = (
        copy(read=nq * a, written=nq * F32)
        + copy(read=nk * a, written=nk * F32).scaled(2)
        + copy(read=s * F32, written=s * a)
        + copy(read=nq * F32, written=nq * a)
    )
    if fold_copies:
        moves += copy(read=nq * F32, written=nq * F32) + copy(read=nk * F32, written=nk * F32).scaled(2)
    scale = elementwise(n=nq, read=nq * F32, written=nq * F32) + elementwise(n=nk, read=nk * F32, written=nk * F32)
    if mask_bytes:
        scale += elementwise(n=s, read=s * F32 + mask_bytes, written=s * F32)
    products = op(mm=2 * s * d, read=(nq + nk) * F32, written=s * F32) + op(
        mm=2 * s * d, read=(s + nk) * F32, written=nq * F32
    )
    return {"data_movement": moves, "elementwise": scale, "linear": products, "attention": softmax(n=s, e=F32)}


def elementwise(*, n: int, flops: int = 1, read: int, written: int, weight: int = 0, kernels: int = 1) -> Cost:
    """An elementwise op with ``n`` output elements and ``flops`` FLOPs each; bytes as given by the caller.

    Source: tracer ``ELEMENTWISE_FLOPS``/``ACTIVATION_FLOPS`` (1 FLOP per output unless listed).
    Leaves out vectorisation and special-function cost.
    """
    return op(vec=n * flops, read=read, written=written, weight=weight, kernels=kernels)


def reduction(*, n_in: int, n_out: int, in_bytes: int, out_bytes: int, mean: bool) -> Cost:
    """``sum``/``mean`` over ``n_in`` elements into ``n_out``: 1 FLOP per input (+1 divide per output for mean).

    Source: tracer ``REDUCTION_FLOPS`` (mean adds one divide per output). Leaves out tree-reduction order.
    """
    return op(vec=n_in + (n_out if mean else 0), read=n_in * in_bytes, written=n_out * out_bytes)


def softmax(*, n: int, e: int) -> Cost:
    """``_softmax`` over ``n`` elements of ``e`` bytes: ``5*n`` FLOPs, read and write ``n*e`` bytes.

    Source: tracer ``SOFTMAX_FLOPS_PER_ENTRY``. Leaves out the numerically-safe variant's extra select.
    """
    return op(vec=SOFTMAX_FLOPS * n, read=n * e, written=n * e)


def layer_norm(*, N: int, d: int, a: int, affine: int = 2) -> Cost:
    """``native_layer_norm`` over ``N`` rows of ``d``: ``(5 + affine)*N*d`` FLOPs (``affine`` = weight, bias).

    Read ``N*d*a`` + the affine vectors; write the output ``N*d*a`` plus fp32 mean and rstd (``2*N*4``).
    Source: tracer ``_norm`` (5 per element + affine). Leaves out the fp32 accumulation inside the kernel.
    """
    weight_bytes = affine * d * a
    return op(
        vec=N * d * (LAYER_NORM_FLOPS + affine),
        read=N * d * a + weight_bytes,
        written=N * d * a + 2 * N * F32,
        weight=weight_bytes,
    )


def copy(*, read: int, written: int, weight: int = 0, kv_read: int = 0, kv_written: int = 0) -> Cost:
    """A copy-like op (clone, cast, pad, cat, index_put): no FLOPs, the given bytes.

    Source: tracer ``_copy``/``_copy_``/``_cat`` (movement rules). Leaves out nothing: copies do no arithmetic.
    """
    return op(read=read, written=written, weight=weight, kv_read=kv_read, kv_written=kv_written)


def fill(*, written: int) -> Cost:
    """A factory or fill (arange, full, zeros): writes its output.

    Source: tracer ``_fill``. Leaves out nothing.
    """
    return op(written=written)


def gather(*, rows_bytes: int, index_bytes: int, weight: bool) -> Cost:
    """Embedding/index: read the selected rows (``rows_bytes``, from a weight table if ``weight``) and the index,
    write the same rows.
    Source: tracer ``_gather_rows`` (docs/conventions.md §2: a gather reads the rows it selects).
    Leaves out cache-line granularity of the row reads.
    """
    return op(read=rows_bytes + index_bytes, written=rows_bytes, weight=rows_bytes if weight else 0)


def sort(*, n: int, row: int, in_bytes: int, out_bytes: int) -> Cost:
    """``sort``/``argsort`` of ``n`` elements in rows of ``row``: ``n*ceil(log2 row)`` comparisons.

    Source: tracer ``sort_flops``. Leaves out the data-dependent cost of a real sort.
    """
    return op(vec=n * max(1, ceil(log2(row))) if row > 1 else 0, read=n * in_bytes, written=out_bytes)


def topk(*, n: int, in_bytes: int, out_bytes: int) -> Cost:
    """``topk`` over ``n`` input elements: one comparison each.

    Source: tracer ``_topk``. Leaves out the partial sort's log factor.
    """
    return op(vec=n, read=n * in_bytes, written=out_bytes)


def interpolate(*, taps: int, n_out: int, read: int, written: int) -> Cost:
    """Separable interpolation: 2 FLOPs per tap per output element (``taps`` = product over dimensions).

    Source: tracer ``_interpolate`` / ``interpolate_taps``.
    Leaves out boundary taps (every output counts the full support).
    """
    return op(vec=2 * taps * n_out, read=read, written=written)


def fused_bytes(*, weights: int, inputs: int, outputs: int) -> int:
    """Fused-kernel convention: a fused layer reads its weights and inputs once and writes its outputs once.

    Source: docs/conventions.md §2 (traced bytes are an upper bound for fused kernels). Leaves out cache reuse
    across layers.
    """
    return weights + inputs + outputs
