"""The fused-kernel byte convention (used for time) and the activation working set (used for peak memory).

Eager op-level bytes (every other formula module) charge every aten op's operands; a production kernel library
fuses.  Here one **fused layer** reads its weights and its external inputs once and writes its external outputs
once (``common.fused_bytes``); everything in between stays on chip:

* a Linear or convolution is one layer; its activation (GELU, SiLU and the SwiGLU gating multiply, quick-GELU)
  is fused into its epilogue, so activation modules cost 0;
* layout copies and dtype casts (window partition, head split/merge, fp32 round trips) cost 0;
* an attention core (RoPE and the KV append included) reads Q, K and V once - the KV cache for a decoder -
  writes the output and the new K/V, and never materialises scores or an additive mask (flash-style);
* norms and residual adds are one layer each; the MoE combine reads the ``T*k_top`` expert rows and writes ``T``;
* ``lm_head`` writes fp32 logits directly (the upcast is fused).

The working set of a layer (for the peak-activation estimate) is its external inputs plus outputs; in eager mode an
attention core also holds its score matrices.  Leaves out allocator behaviour and tensors held by callers, so the
peak is a lower bound of the traced live-set peak.
"""

from __future__ import annotations

from attrs import frozen

from llm_perf_opt.analytic.formulas.common import F32, fused_bytes

__all__ = [
    "FusedLayer",
    "attention_layer",
    "conv_layer",
    "decoder_attention_layer",
    "elementwise_layer",
    "layer",
    "linear_layer",
    "norm_layer",
    "scores_working_set",
]


@frozen
class FusedLayer:
    """One fused layer: ``nbytes`` moved (weights + inputs + outputs), ``live`` activation bytes held while it runs."""

    nbytes: int
    live: int


def layer(*, weights: int, inputs: int, outputs: int, extra_live: int = 0) -> FusedLayer:
    """A fused layer: ``weights + inputs + outputs`` bytes moved; ``inputs + outputs (+ extra_live)`` held.

    Source: ``common.fused_bytes``. Leaves out everything kept on chip.
    """
    return FusedLayer(fused_bytes(weights=weights, inputs=inputs, outputs=outputs), inputs + outputs + extra_live)


def elementwise_layer(*, n: int, operands: int, a: int) -> FusedLayer:
    """An elementwise layer over ``n`` elements reading ``operands`` tensors of that size: ``(operands + 1)*n*a``.

    Source: module docstring (fused convention). Leaves out fusion into a neighbouring kernel.
    """
    return layer(weights=0, inputs=operands * n * a, outputs=n * a)


def scores_working_set(*, BH: int, q: int, k: int, a: int, masked: bool) -> int:
    """Eager attention's materialised scores: fp32 scores and probabilities plus a cast copy (``BH*q*k*(4+4+a)``),
    and the additive mask if any (``BH*q*k*a``).
    Source: the eager attention path (fp32 scores, probabilities and a cast). Leaves out allocator caching.
    """
    s = BH * q * k
    return s * (F32 + F32 + a) + (s * a if masked else 0)


def attention_layer(*, BH: int, q: int, k: int, d: int, a: int, eager: bool, masked: bool) -> FusedLayer:
    """An encoder attention core (SAM, CLIP): read Q, K, V once, write the output.  Working set: plus the additive
    mask the model itself materialises (SAM's rel-pos bias, ``BH*q*k*a``) and, eager, the score matrices.
    Source: module docstring (fused convention). Leaves out tiling re-reads of K/V.
    """
    extra = scores_working_set(BH=BH, q=q, k=k, a=a, masked=False) if eager else 0
    extra += BH * q * k * a if masked else 0
    return layer(weights=0, inputs=BH * (q + 2 * k) * d * a, outputs=BH * q * d * a, extra_live=extra)


def decoder_attention_layer(*, B: int, q: int, k: int, H: int, Hkv: int, c: int, a: int, eager: bool) -> FusedLayer:
    """A decoder attention core over ``k`` cached keys: read Q (``B*q*H*c``) and the K/V cache (``2*B*Hkv*k*c``),
    write the output and the ``q`` new K/V rows (``B*q*(H + 2*Hkv)*c``).
    Source: module docstring (fused convention). Leaves out tiling re-reads of K/V.
    """
    extra = scores_working_set(BH=B * H, q=q, k=k, a=a, masked=q > 1) if eager else 0
    inputs = B * q * H * c * a + 2 * B * Hkv * k * c * a
    return layer(weights=0, inputs=inputs, outputs=B * q * (H + 2 * Hkv) * c * a, extra_live=extra)


def linear_layer(*, N: int, d_in: int, d_out: int, bias: bool, a: int, out_bytes: int | None = None) -> FusedLayer:
    """A Linear on ``N`` rows (its activation fused in): weights (+bias), ``N*d_in`` in, ``N*d_out`` out
    (``out_bytes`` per output element, default ``a``: ``lm_head`` writes fp32 logits).
    Source: module docstring (fused convention). Leaves out re-reads when the weights do not fit on chip.
    """
    w = (d_in * d_out + (d_out if bias else 0)) * a
    return layer(weights=w, inputs=N * d_in * a, outputs=N * d_out * (a if out_bytes is None else out_bytes))


def conv_layer(*, B: int, C_in: int, C_out: int, n_in: int, n_out: int, taps: int, bias: bool, a: int) -> FusedLayer:
    """A convolution: weights ``C_out*C_in*taps`` (+bias), ``B*C_in*n_in`` in, ``B*C_out*n_out`` out (``n`` =
    spatial positions).
    Source: module docstring (fused convention). Leaves out im2col re-reads.
    """
    w = (C_out * C_in * taps + (C_out if bias else 0)) * a
    return layer(weights=w, inputs=B * C_in * n_in * a, outputs=B * C_out * n_out * a)


def norm_layer(*, N: int, d: int, affine: int, a: int) -> FusedLayer:
    """A norm over ``N`` rows of ``d``: ``affine`` vectors of ``d`` weights, ``N*d`` in and out.

    Source: module docstring (fused convention). Leaves out the second pass of a two-pass norm.
    """
    return layer(weights=affine * d * a, inputs=N * d * a, outputs=N * d * a)
