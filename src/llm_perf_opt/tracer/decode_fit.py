"""Decode without tracing every step: check that every counter is affine in the step, then integrate exactly.

Step ``i`` (1-based, ``1 <= i <= n`` with ``n = N - 1`` steps) attends over ``S + i`` keys with ``S + i - 1``
cached, so each cost is expected to be ``a + b*i``.  Three steps ``i1 < i2 < i3`` are traced; every counter of
every (node, category, op) row, every call count, every peak and every KV-held value must satisfy
``(v2 - v1) * (i3 - i1) == (v3 - v1) * (i2 - i1)`` exactly.  Then, with ``slope = (v3 - v1) / (i3 - i1)``:

* additive counters and calls: ``sum_{i=1..n} (v1 + slope*(i - i1)) = n*v1 + slope*(n(n+1)/2 - n*i1)``,
  which must be an integer;
* peaks: the larger end value ``max(v(1), v(n))``.  A peak need not be affine: it is the maximum over the step's
  ops of live levels that are each affine in the step, so it is convex in the step (in eager decode, for example,
  the score matrix overtakes another tensor part way through), and a convex function peaks at an end.  With the
  traced steps ``1 < mid < n`` the check is convexity at ``mid`` (``v2`` on or below the chord of ``v1``, ``v3``);
  with other steps, affinity;
* KV held at the end of decode: ``v(n)``.

Three points can only *refute* affinity: a counter that is affine at the three traced steps but not in between
(for example one that changes every 64 keys) would pass; a test compares against tracing every step.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

from llm_perf_opt.core.counts import COST_FIELDS, Counters
from llm_perf_opt.tracer.nodedata import NodeData

_K = TypeVar("_K", bound=Hashable)

__all__ = [
    "AffineFitError",
    "check_affine",
    "field_triple",
    "fit_steps",
    "integrate",
    "integrate_affine",
    "key_triple",
    "ordered_keys",
    "pick_steps",
]


class AffineFitError(Exception):
    """A counter is not affine in the decode step; ``where`` names it."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def pick_steps(n: int) -> tuple[int, ...]:
    """The steps to trace for ``n`` decode steps: ``(1, mid, n)`` when ``n >= 4``, else every step."""
    if n < 4:
        return tuple(range(1, n + 1))
    return (1, 1 + (n - 1) // 2, n)


def _value(v1: int, v3: int, i1: int, i3: int, i: int) -> Fraction:
    return v1 + Fraction(v3 - v1, i3 - i1) * (i - i1)


def _check(name: str, values: tuple[int, int, int], steps: tuple[int, int, int]) -> None:
    (v1, v2, v3), (i1, i2, i3) = values, steps
    if (v2 - v1) * (i3 - i1) != (v3 - v1) * (i2 - i1):
        raise AffineFitError(f"{name}: {v1}, {v2}, {v3} at steps {i1}, {i2}, {i3}")


def _check_convex(name: str, values: tuple[int, int, int], steps: tuple[int, int, int]) -> None:
    (v1, v2, v3), (i1, i2, i3) = values, steps
    if (v2 - v1) * (i3 - i1) > (v3 - v1) * (i2 - i1):
        raise AffineFitError(f"{name}: {v1}, {v2}, {v3} at steps {i1}, {i2}, {i3} (above the chord: not convex)")


def integrate_affine(*, v1: int, v3: int, i1: int, i3: int, n: int) -> int:
    """``sum_{i=1..n} v(i)`` for the affine ``v`` through ``(i1, v1)`` and ``(i3, v3)``; exact or AffineFitError."""
    slope = Fraction(v3 - v1, i3 - i1)
    total = n * v1 + slope * (Fraction(n * (n + 1), 2) - n * i1)
    if total.denominator != 1:
        raise AffineFitError(f"sum over {n} steps is not an integer ({total})")
    return int(total)


def ordered_keys(maps: Iterable[Mapping[_K, Any]]) -> list[_K]:
    """The keys of ``maps`` in first-seen order: deterministic, unlike a set of strings under hash randomisation
    (the counter a refused fit names, and the order of the fitted tables, must not vary from process to process)."""
    return list(dict.fromkeys(key for m in maps for key in m))


def key_triple(maps: tuple[Mapping[Hashable, int], ...], key: Hashable) -> tuple[int, int, int]:
    """``key``'s value in each of three ``maps`` (0 where missing)."""
    return maps[0].get(key, 0), maps[1].get(key, 0), maps[2].get(key, 0)


def field_triple(rows: list[Counters], name: str) -> tuple[int, int, int]:
    """Counter ``name`` of the three ``rows``."""
    return getattr(rows[0], name), getattr(rows[1], name), getattr(rows[2], name)


def fit_steps(steps: Mapping[int, NodeData], n: int) -> NodeData:
    """Integrate three traced steps over ``n`` steps (see module docstring); raises AffineFitError."""
    i1, i2, i3 = sorted(steps)
    idx = (i1, i2, i3)
    data = [steps[i] for i in idx]
    out = NodeData()
    keys = ordered_keys(d.table for d in data)
    zero = Counters()
    for key in keys:
        rows = [d.table.get(key, zero) for d in data]
        total: dict[str, int] = {}
        for name in COST_FIELDS:
            triple = field_triple(rows, name)
            _check(f"{key} {name}", triple, idx)
            total[name] = integrate_affine(v1=triple[0], v3=triple[2], i1=i1, i3=i3, n=n)
        out.table[key] = Counters(**total)
    for attr in ("calls", "peaks", "kv_held"):
        maps = tuple(getattr(d, attr) for d in data)
        target: dict[Hashable, int] = getattr(out, attr)
        for nk in ordered_keys(maps):
            triple = key_triple(maps, nk)
            if attr == "peaks" and (i1, i3) == (1, n):
                _check_convex(f"{attr} of {nk}", triple, idx)
                target[nk] = max(triple[0], triple[2])
                continue
            _check(f"{attr} of {nk}", triple, idx)
            if attr == "calls":
                target[nk] = integrate_affine(v1=triple[0], v3=triple[2], i1=i1, i3=i3, n=n)
            else:
                first, last = _value(*triple[::2], i1, i3, 1), _value(*triple[::2], i1, i3, n)
                end = last if attr == "kv_held" else max(first, last)
                if end.denominator != 1:
                    raise AffineFitError(f"{attr} of {nk} at an end step is not an integer ({end})")
                target[nk] = int(end)
    return out


def check_affine(steps: Mapping[int, NodeData]) -> None:
    """Every counter, call, peak and KV level of ``steps`` (three or more) on one line in the step; else
    AffineFitError naming the first that is not."""
    idx = sorted(steps)
    data = [steps[i] for i in idx]
    zero = Counters()
    for k in range(1, len(idx) - 1):
        picked = (0, k, len(idx) - 1)
        points = (idx[0], idx[k], idx[-1])
        for key in ordered_keys(d.table for d in data):
            rows = [data[j].table.get(key, zero) for j in picked]
            for name in COST_FIELDS:
                _check(f"{key} {name}", field_triple(rows, name), points)
        for attr in ("calls", "peaks", "kv_held"):
            maps = tuple(getattr(data[j], attr) for j in picked)
            for nk in ordered_keys(maps):
                _check(f"{attr} of {nk}", key_triple(maps, nk), points)


def integrate(steps: Mapping[int, NodeData]) -> NodeData:
    """Every step traced: sums (peaks and KV held: the max over steps, i.e. the end state for KV)."""
    out = NodeData()
    for i in sorted(steps):
        out.add(steps[i])
    return out
