"""Pure FLOP formulas on shapes (no tensors): 2 FLOPs per multiply-accumulate (docs/conventions.md §1).

Each function's docstring gives the formula, where it comes from and what it leaves out.  The matmul and
convolution formulas are the ones torch's ``FlopCounterMode`` uses (``torch/utils/flop_counter.py``), so
``matmul_flops`` can be checked against torch exactly.
"""

from __future__ import annotations

from math import ceil, log2, prod

__all__ = [
    "SORT_RULE",
    "causal_score_entries",
    "conv_flops",
    "grouped_mm_flops",
    "interpolate_taps",
    "matmul_flops",
    "sdpa_flops",
    "sort_flops",
]


def matmul_flops(*, b: int = 1, m: int, k: int, n: int) -> int:
    """``2*b*m*k*n``: a batch of ``b`` products of an ``m x k`` and a ``k x n`` matrix.

    Source: FlopCounterMode's mm/bmm formulas.  Leaves out a fused bias/beta term (charged separately as vector
    FLOPs by the op handlers).
    """
    return 2 * b * m * k * n


def conv_flops(
    *, N: int, C_out: int, C_in_per_group: int, kernel: tuple[int, ...], out_spatial: tuple[int, ...]
) -> int:
    """``2 * N * prod(out_spatial) * C_out * C_in_per_group * prod(kernel)``.

    Source: FlopCounterMode's ``conv_flop_count`` (for a transposed conv pass the *input* spatial size as
    ``out_spatial``).  Leaves out the bias add (vector FLOPs) and padding (padded taps are counted).
    """
    return 2 * N * prod(out_spatial) * C_out * C_in_per_group * prod(kernel)


def grouped_mm_flops(*, T: int, K: int, N: int) -> int:
    """``2*T*K*N`` for a grouped matmul whose groups together cover ``T`` rows of ``K`` inputs and ``N`` outputs.

    Source: ``aten._grouped_mm`` semantics (each row meets exactly one group's ``K x N`` matrix).  torch's
    FlopCounterMode has no formula for this op and counts 0 (prior-art notes).
    """
    return 2 * T * K * N


def causal_score_entries(*, q: int, k: int) -> int:
    """Score entries a causal kernel computes when the ``q`` queries are the last ``q`` of ``k`` keys.

    Query ``j`` (0-based among the ``q``) sees ``k - q + 1 + j`` keys, so the sum is ``q*k - q*(q-1)/2``
    (``q*(q+1)/2`` for ``q == k``; ``k`` for one decode query).  Leaves out tile granularity: a flash kernel
    also computes the masked part of diagonal tiles.
    """
    if q > k:
        raise ValueError(f"causal attention with more queries ({q}) than keys ({k})")
    return q * k - q * (q - 1) // 2


def sdpa_flops(*, BH: int, L: int, S: int, E: int, Ev: int, entries: int | None = None) -> int:
    """``2*BH*entries*E + 2*BH*entries*Ev``: ``Q K^T`` and ``P V`` over ``entries`` score entries per head.

    ``entries`` defaults to ``L*S`` (dense, what FlopCounterMode's SDPA formula counts); pass
    :func:`causal_score_entries` for what a causal flash kernel executes.  Leaves out the softmax (vector FLOPs).
    """
    e = L * S if entries is None else entries
    return 2 * BH * e * E + 2 * BH * e * Ev


SORT_RULE = "numel*ceil(log2 n) comparisons"
"""The rule text of a sort (``op_buckets``' reason): ops counted by :func:`sort_flops`."""


def sort_flops(*, numel: int, n: int) -> int:
    """``numel * ceil(log2 n)`` comparisons for sorting rows of length ``n`` (comparison-sort bound)."""
    return numel * max(1, ceil(log2(n))) if n > 1 else 0


def interpolate_taps(*, taps_1d: int, in_sizes: tuple[int, ...], out_sizes: tuple[int, ...], antialias: bool) -> int:
    """Input taps per output element of a separable interpolation: ``prod(taps_1d * scale_d)``.

    Without antialias every dimension uses ``taps_1d`` taps (nearest 1, linear 2, cubic 4).  With antialias a
    downscaling dimension widens its support by the scale ``in/out`` (PIL-style filters), rounded up.
    """
    taps = 1
    for i, o in zip(in_sizes, out_sizes, strict=True):
        scale = i / o if (antialias and o and i > o) else 1.0
        taps *= ceil(taps_1d * scale)
    return taps
