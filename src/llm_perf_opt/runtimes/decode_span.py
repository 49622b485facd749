"""Every decode step of one request, summed in closed form: the cost of ``analyze`` does not grow with its output.

A request of batch ``B`` decodes ``n`` steps at contexts ``L = S+1 .. S+n``, every sequence of a step at the same
``L``.  Within one step, a kernel group (a decode row of the
:class:`~llm_perf_opt.runtimes.timer.RuntimeIterationTimer`) computes in ``c(L) = c0 + c1*L`` seconds and moves its
bytes in ``m(L) = m0 + m1*L`` seconds: per-token FLOPs and bytes are fixed (``B`` tokens), per-pair FLOPs and KV
reads grow with ``B*L``; the expert coverage, the fused-MoE tile efficiency, the graph mode and the kernels depend
on ``B`` alone, so they are the same in every step.  The group's roofline ``max(c, m)`` is ``c`` on one side of the
crossing ``c(L) = m(L)`` and ``m`` on the other, and a sum of ``a + b*L`` over consecutive ``L`` is
``n*a + b*sum(L)`` - so each group's sum over all steps costs a few operations, not ``n``.

A step's time is the timer's (:meth:`~llm_perf_opt.runtimes.timer.ForwardTerms.seconds`): with overlap, ``max(roof(L)
+ gaps, launches)`` plus the host time per step, where ``roof(L)`` (a sum of non-decreasing lines' maxima) is
non-decreasing, so the steps where the launches win come first and are found by bisection; without overlap
``roof(L) + launches`` plus the host time.  The same arithmetic as :meth:`RuntimeIterationTimer.decode_terms` step by
step, up to floating-point rounding (tests compare the two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attrs import frozen

from llm_perf_opt.perf.efficiency import CATEGORIES
from llm_perf_opt.runtimes.timer import RuntimeIterationTimer

__all__ = ["DecodeSpan", "decode_span"]


@frozen(kw_only=True)
class DecodeSpan:
    """Sums over every decode step of one request (seconds, kernels, bytes)."""

    seconds: float
    compute_s: float
    memory_s: float
    overhead_s: float
    kernels: float
    bytes: float


@frozen
class _Group:
    """One kernel group in a step at context ``L``: compute ``c0 + c1*L`` s, memory ``m0 + m1*L`` s."""

    c0: float
    c1: float
    m0: float
    m1: float


def _range_sum(a: float, b: float, lo: int, hi: int) -> float:
    """``sum(a + b*L for L in lo..hi)`` (0 for an empty range)."""
    if hi < lo:
        return 0.0
    n = hi - lo + 1
    return n * a + b * float((lo + hi) * n // 2)


def _compute_wins(g: _Group, lo: int, hi: int) -> tuple[int, int]:
    """The contexts ``[first, last]`` of ``lo..hi`` where compute wins (``c(L) >= m(L)``; empty when first > last):
    the crossing rounded, then moved to where the comparison itself changes."""
    d0, d1 = g.c0 - g.m0, g.c1 - g.m1

    def wins(x: int) -> bool:
        return d0 + d1 * x >= 0.0

    if d1 == 0.0:
        return (lo, hi) if d0 >= 0.0 else (lo, lo - 1)
    edge = min(max(-d0 / d1, lo - 1.0), hi + 1.0)  # the crossing, clamped (a huge one does not overflow ceil)
    if d1 > 0:  # compute wins from some L on
        first = min(max(math.ceil(edge), lo), hi + 1)
        while first <= hi and not wins(first):
            first += 1
        while first > lo and wins(first - 1):
            first -= 1
        return first, hi
    last = min(max(math.floor(edge), lo - 1), hi)  # compute wins up to some L
    while last >= lo and not wins(last):
        last -= 1
    while last < hi and wins(last + 1):
        last += 1
    return lo, last


def _roof_at(groups: Sequence[_Group], x: int) -> float:
    return sum(max(g.c0 + g.c1 * x, g.m0 + g.m1 * x) for g in groups)


def _groups(timer: RuntimeIterationTimer, batch: int) -> tuple[list[_Group], float, float, float, float]:
    """The step's kernel groups and its (kernels, bytes at L=0, bytes per unit of L, launch seconds)."""
    rates, runtime = timer.rates, timer.runtime
    profile = rates.profile
    per_byte = rates.bytes_scale / (rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
    base = timer.probe_coverage["decode"]
    scale = timer.coverage.distinct(batch) / base if base else 1.0
    moe = timer.moe_efficiency(batch)
    graphed = timer.decode_terms(contexts=(1,) * batch).graphs
    groups: list[_Group] = []
    kernels = bytes0 = bytes1 = launch = 0.0
    for key in sorted(timer.decode_rows):
        row = timer.decode_rows[key]
        fixed, f0, f1, k = row.b_fixed, row.f_tok * batch, row.f_pair * batch, row.kernels
        if row.expert:
            fixed, f0, f1 = fixed * scale, f0 / moe, f1 / moe
            k = k * scale if not runtime.fused_moe else k
        eff = profile.category_efficiency[CATEGORIES[row.category]]
        c0 = (f0 / rates.matmul_peak_flops + row.v_tok * batch / rates.vector_peak_flops) / eff
        c1 = (f1 / rates.matmul_peak_flops + row.v_pair * batch / rates.vector_peak_flops) / eff
        b0, b1 = row.b_tok * batch + fixed, row.b_key * batch
        groups.append(_Group(c0, c1, b0 * per_byte, b1 * per_byte))
        kernels, bytes0, bytes1 = kernels + k, bytes0 + b0, bytes1 + b1
        in_graph = row.graphable and (graphed == "full" or (graphed == "piecewise" and not row.attention))
        if not runtime.overlap:
            launch += k * profile.kernel_overhead("decode")
        elif not in_graph:
            launch += k * runtime.host_per_kernel_s
    return groups, kernels, bytes0, bytes1, launch


def decode_span(timer: RuntimeIterationTimer, *, batch: int, seq_len: int, steps: int) -> DecodeSpan:
    """Steps ``1..steps`` of ``batch`` sequences at contexts ``seq_len + i``, summed (see the module doc)."""
    if steps <= 0:
        return DecodeSpan(seconds=0.0, compute_s=0.0, memory_s=0.0, overhead_s=0.0, kernels=0.0, bytes=0.0)
    lo, hi = seq_len + 1, seq_len + steps
    groups, kernels, bytes0, bytes1, launch = _groups(timer, batch)
    roof = compute = 0.0
    for g in groups:  # contexts in units of L: pairs and keys are batch * L, folded into c1 and m1
        first, last = _compute_wins(g, lo, hi)
        won = _range_sum(g.c0, g.c1, first, last)
        compute += won
        roof += won + _range_sum(g.m0, g.m1, lo, first - 1) + _range_sum(g.m0, g.m1, last + 1, hi)
    host = timer.decode_terms(contexts=(lo,) * batch).step_host_s
    device = roof + steps * launch
    if timer.runtime.overlap:
        gaps = kernels * timer.gap_s
        start = _first_device_bound(groups, gaps, launch, lo, hi)
        device = (start - lo) * launch + _roof_sum(groups, start, hi) + (hi - start + 1) * gaps
    seconds = device + steps * host
    return DecodeSpan(
        seconds=seconds,
        compute_s=compute,
        memory_s=roof - compute,
        overhead_s=seconds - roof,
        kernels=steps * kernels,
        bytes=_range_sum(bytes0, bytes1, lo, hi),
    )


def _first_device_bound(groups: Sequence[_Group], gaps: float, launch: float, lo: int, hi: int) -> int:
    """The first context of ``lo..hi`` whose ``roof + gaps`` reaches the launches (``hi + 1`` if none does)."""
    if _roof_at(groups, hi) + gaps < launch:
        return hi + 1
    first, last = lo, hi
    while first < last:
        mid = (first + last) // 2
        if _roof_at(groups, mid) + gaps >= launch:
            last = mid
        else:
            first = mid + 1
    return first


def _roof_sum(groups: Sequence[_Group], lo: int, hi: int) -> float:
    total = 0.0
    for g in groups:
        first, last = _compute_wins(g, lo, hi)
        total += _range_sum(g.c0, g.c1, first, last)
        total += _range_sum(g.m0, g.m1, lo, first - 1) + _range_sum(g.m0, g.m1, last + 1, hi)
    return total
