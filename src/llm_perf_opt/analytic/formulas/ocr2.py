"""DeepSeek-OCR-2 parts transformers implements differently from v1's remote code, eager op-level convention.

SAM's rel-pos tables (always interpolated, in the model dtype), the view features and their injection into the
embeddings, the text model's shared causal mask, and the counting experts' sorted dispatch.  The SAM blocks, the
RMSNorms, the attention cores and the SwiGLU MLPs are v1's formulas (:mod:`.sam`, :mod:`.decoder`).

Symbols: ``s`` side of the token grid a SAM attention sees, ``rows`` rows of its rel-pos parameter, ``c`` head
width, ``B`` batch, ``S`` prefill length, ``q`` new tokens of a pass, ``k`` keys, ``N_img`` image tokens per page,
``d`` decoder width, ``T`` tokens of an MoE layer, ``k_top`` experts per token, ``a`` bytes per element.
Source: transformers ``models/deepseek_ocr2/modeling_deepseek_ocr2.py`` and ``masking_utils`` (5.10+), and the
counting experts implementation (``llm_perf_opt.sources.deepseek_ocr2.experts``).
"""

from __future__ import annotations

from llm_perf_opt.analytic.formulas.common import F32, I64, copy, elementwise, fill, gather, interpolate, op, sort
from llm_perf_opt.core import Cost

__all__ = [
    "causal_mask_eager",
    "expert_combine",
    "expert_dispatch",
    "image_features",
    "placeholder_scatter",
    "projector_batched",
    "rel_pos_bias",
    "rel_pos_table",
]


def rel_pos_table(*, s: int, rows: int, c: int, a: int) -> Cost:
    """One ``get_rel_pos`` of transformers' SAM: the parameter (``rows x c``, a weight) linearly interpolated to
    ``2s-1`` rows in the model dtype (``upsample_linear1d``, 2 taps; also when the length already fits), the offset
    grid (two ``arange``, two scalings to fp32, subtract, add, cast to int64) and the gather of ``s^2`` rows.
    Source: ``DeepseekOcr2SamVisionAttention.get_rel_pos``. Leaves out nothing.
    """
    span = 2 * s - 1
    table = rows * c * a
    resized = interpolate(taps=2, n_out=span * c, read=table, written=span * c * a) + Cost(weight_bytes_read=table)
    coords = (fill(written=s * I64) + elementwise(n=s, read=s * I64, written=s * F32)).scaled(2)
    offsets = (
        elementwise(n=s * s, read=2 * s * F32, written=s * s * F32)
        + elementwise(n=s * s, read=s * s * F32, written=s * s * F32)
        + copy(read=s * s * F32, written=s * s * I64)
    )
    return resized + coords + offsets + gather(rows_bytes=s * s * c * a, index_bytes=s * s * I64, weight=False)


def rel_pos_bias(*, Bw: int, h: int, s: int, c: int, a: int) -> Cost:
    """transformers' decomposed rel-pos bias of one SAM attention call, after the two tables: the copies of q the
    einsums make (one, or two when ``Bw == 1`` and q is still a strided view of the qkv output), the two einsums
    ``q . R`` (``bmm``: ``2*Bw*h*s^3*c`` each), the broadcast add into ``[Bw*h, s, s, s, s]`` and the copy its
    reshape to ``[Bw, h, T, T]`` makes (``T = s^2``).  Source: ``get_decomposed_rel_pos`` and the SDPA attention's
    ``reshape``.  Leaves out nothing.
    """
    BH, T = Bw * h, s * s
    q_bytes, r_bytes, term, bias = BH * T * c * a, s * s * c * a, BH * T * s * a, BH * T * T * a
    einsum = op(mm=2 * BH * T * s * c, read=q_bytes + r_bytes, written=term)
    q_copies = copy(read=q_bytes, written=q_bytes).scaled(1 if Bw > 1 else 2)
    add = elementwise(n=BH * T * T, read=2 * term, written=bias)
    return q_copies + einsum.scaled(2) + add + copy(read=bias, written=bias)


def projector_batched(*, B: int, n: int, d_in: int, d: int, a: int) -> Cost:
    """``multi_modal_projector`` on the query slice of a ``B > 1`` view batch: the slice is not contiguous, so
    ``nn.Linear`` runs as a batched product with the weight expanded (read once) plus a bias add.
    ``2*B*n*d_in*d`` FLOPs.  Source: torch ``linear`` on a non-contiguous 3-D input. Leaves out nothing.
    """
    N, weight = B * n, d_in * d * a
    product = op(mm=2 * N * d_in * d, read=N * d_in * a + weight, written=N * d * a, weight=weight)
    bias = elementwise(n=N * d, read=N * d * a + d * a, written=N * d * a, weight=d * a)
    return product + bias


def image_features(*, B: int, N_img: int, d: int, a: int) -> Cost:
    """Per page ``cat([tiles' rows, global rows, view_separator])`` (the separator a weight), then one ``cat`` of the
    batch's pages: ``2*B*N_img*d*a`` written.  Source: ``DeepseekOcr2Model.get_image_features``/``forward``.
    Leaves out the per-page reshapes and the split of the tile batch (views).
    """
    rows, sep = N_img * d * a, d * a
    per_page = copy(read=rows, written=rows, weight=sep)
    return per_page.scaled(B) + copy(read=B * rows, written=B * rows)


def placeholder_scatter(*, B: int, S: int, N_img: int, d: int, a: int) -> Cost:
    """Where the image rows go: ``input_ids == image_token_id`` (``B*S``), its count (``sum``), the count check's
    product and comparison (one element each), and the out-of-place ``masked_scatter`` of ``B*N_img`` rows into
    the ``B*S`` embeddings.  Source: ``DeepseekOcr2Model.get_placeholder_mask``/``forward``.
    Leaves out the host side of the count check (skipped on meta, the inputs being built from the workload).
    """
    n, rows = B * S, B * N_img * d
    return (
        elementwise(n=n, read=n * I64, written=n)
        + op(vec=n, read=n, written=I64)
        + elementwise(n=1, read=I64, written=I64)
        + elementwise(n=1, read=I64, written=1)
        + copy(read=n + rows * a + (n * d - rows) * a, written=n * d * a)
    )


def causal_mask_eager(*, B: int, q: int, k: int, a: int) -> Cost:
    """The text model's additive causal mask for eager attention, built once per forward (``q`` queries over ``k``
    keys): ``arange`` of batch, head, q and kv, two offset adds, ``kv <= q`` (``q*k``), two scalar constants and the
    ``where`` into ``[B, 1, q, k]``.  SDPA needs none (``is_causal``, or no mask for one query).
    Source: transformers ``masking_utils.eager_mask``/``sdpa_mask``. Leaves out nothing.
    """
    return (
        fill(written=B * I64)
        + fill(written=I64)
        + fill(written=q * I64)
        + fill(written=k * I64)
        + elementwise(n=q, read=q * I64, written=q * I64)
        + elementwise(n=k, read=k * I64, written=k * I64)
        + elementwise(n=q * k, read=(q + k) * I64, written=q * k)
        + fill(written=a).scaled(2)
        + elementwise(n=B * q * k, read=q * k + 2 * a, written=B * q * k * a)
    )


def expert_dispatch(*, T: int, d: int, k_top: int, a: int) -> Cost:
    """The counting experts before the expert linears: ``argsort`` of the ``A = T*k_top`` assignments, token index
    ``// k_top``, the gather of ``A`` token rows and of their ``A`` fp32 router weights.
    Source: ``llm_perf_opt.sources.deepseek_ocr2.experts.routed_experts_forward``. Leaves out nothing.
    """
    A = T * k_top
    return (
        sort(n=A, row=A, in_bytes=I64, out_bytes=2 * A * I64)
        + elementwise(n=A, read=A * I64, written=A * I64)
        + gather(rows_bytes=A * d * a, index_bytes=A * I64, weight=False)
        + gather(rows_bytes=A * F32, index_bytes=A * I64, weight=False)
    )


def expert_combine(*, T: int, d: int, k_top: int, a: int) -> Cost:
    """After the expert linears: concat the ``A = T*k_top`` expert rows, cast the weights, weight the rows, a zero
    output and the ``index_add_`` back to the ``T`` tokens (the tracer charges ``min(A, T)*d`` elements).
    Source: ``llm_perf_opt.sources.deepseek_ocr2.experts.routed_experts_forward``. Leaves out nothing.
    """
    A, n = T * k_top, T * k_top * d
    m = min(A, T) * d
    return (
        copy(read=n * a, written=n * a)
        + copy(read=A * F32, written=A * a)
        + elementwise(n=n, read=n * a + A * a, written=n * a)
        + fill(written=T * d * a)
        + elementwise(n=m, read=2 * m * a + A * I64, written=m * a)
    )
