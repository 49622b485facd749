"""Another batch without tracing: the language stages at batch ``B`` derived from a few traced batches (torch-free).

The vision and projector stages of a prefill are already extrapolated in the batch from batch 1, 2, 3
(:mod:`~llm_perf_opt.tracer.batch_fit`); the language stages were traced at ``B`` itself, because MoE expert
coverage is not affine in the batch.  A :class:`BatchBasis` keeps the language passes (the prefill's language stages
and the traced decode steps) at three batches ``p1 < p2 < p3`` where every MoE layer routes to the same experts as
at ``p3`` (the routing model says which, in closed form), and derives any batch ``p1 <= B <= p3`` with that same
expert coverage:

* every additive counter, call count and KV level: affine in ``B`` (a shape formula is a polynomial in the batch,
  of degree one in it; three collinear points rule out a higher degree), except a **sort**'s comparisons,
  ``n * ceil(log2 n)`` per call: its per-call length ``n`` is affine in ``B`` instead;
* a routed expert's peak (and its submodules'): ``alpha + beta*B + gamma*prefix + delta*size``, where ``size`` is
  the expert's slice and ``prefix`` the tokens of the experts dispatched before it (their outputs are alive), both
  from the routing model at ``B``; one law per pass and per pattern, solved exactly from the traced members and
  checked on every one of them; a pattern's peak is the largest member's;
* every other peak: the largest live level of a node, each level affine in ``B``, so convex: affine at the three
  points means affine on ``[p1, p3]`` (not beyond, so ``B`` stays inside).  A node above routed experts takes
  ``max(affine, its experts' peak)`` and needs its own levels to be above its experts' at all three points.

Below ``p1`` the MoE layers call fewer experts, a different set at nearly every batch.  The basis also keeps the
language passes at the **low points** (:data:`LOW_POINTS`: batch 1, 2, 3, 4) and derives ``lowest <= B < p1``:

* an additive value of a node at or under MoE layers: ``line(B) + c * (N(B) - N(p3))``, ``line`` the value's line
  through the three points and ``N`` the experts the routing model has those layers call at ``B`` (:class:`_Value`):
  every called expert runs the same ops, whose cost is a constant plus an amount per token of its slice, and the
  slices add up to ``k`` times the tokens, which is affine in ``B``; the MoE's own dispatch ops likewise.  ``c`` is
  solved at the first low point that calls fewer experts and checked at the others;
* a routed expert's peak: its law (fitted on the low points' members too);
* every other peak: the largest of its line through the points, a line through the low points that those do not
  explain (a routing buffer above a one-token expert call, at the smallest batches) and its experts' peaks.

:func:`check_basis` derives the three points and the low ones back and compares them with what was traced: a basis
that does not reproduce them exactly is not kept; one whose low points alone are off keeps fewer of them (from
batch 2, where eager attention runs one more view at batch 1 than its line says) or none.  The vision and projector
rows are kept too (their traces at batch 1, 2, 3 and the node each path belongs to), so :func:`derive_batch`
extrapolates them exactly as a trace does.  Tests compare derived and traced trees on every node at several
batches, and at every batch below ``p1`` for the tiny model.

DeepSeek-OCR-2 (transformers' tree) encodes every row of a batch in one call, so its basis has no rows: its prefill
passes hold every stage, derived by the same laws (its SAM attention copies are off their line at batch 1 only: its
basis derives from batch 2).  Its experts are one fused module per MoE layer (:attr:`MoeLayer.fused`) that calls
them in ascending slice size, so the peak of the experts module and of its submodules is that of its last call,
whose slice is the largest and whose prefix is every other routed token: a member law in the batch and that slice
(:data:`LAST`; :func:`fit_member_law` with ``fused``), and the nodes above it take its peak where it is theirs at
every point.
Left out: a batch between the low points and ``p1`` is not compared with a trace at run time (the laws hold there
for the reasons above; the tests compare every such batch of the tiny model and several of the full one); trees
whose routed experts' peaks fit no single law (no basis, traced); upstream remote-code trees (their experts are
dispatched by adapters this module does not read: no basis).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from attrs import evolve, field, frozen

from llm_perf_opt.core.counts import COST_FIELDS, Counters
from llm_perf_opt.tracer.batch_fit import BatchFitError, affine_at, extrapolate_stages
from llm_perf_opt.tracer.decode_fit import AffineFitError, fit_steps, integrate, ordered_keys
from llm_perf_opt.tracer.derive import (
    DecodeBasis,
    DeriveError,
    data_from_json,
    data_to_json,
    decode_basis,
    nodes_with_counts,
)
from llm_perf_opt.tracer.ledger import build_ledger
from llm_perf_opt.tracer.nodedata import NodeData, NodeKey, Pattern, to_node_data
from llm_perf_opt.tracer.ops.formulas import SORT_RULE, sort_flops
from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.rollup import StageRollup, active_stages
from llm_perf_opt.workloads import RoutingModel

__all__ = [
    "LAST",
    "LOW_POINTS",
    "BatchBasis",
    "BatchDeriveError",
    "MemberLaw",
    "MoeLayer",
    "answers_for",
    "batch_basis_from_json",
    "batch_basis_to_json",
    "called_experts",
    "check_basis",
    "choose_points",
    "derive_batch",
    "derive_pass",
    "fit_member_law",
    "low_points",
    "member_layout",
]

PREFILL = "prefill"
"""Name of the prefill pass in a basis (decode steps are ``step:<i>``)."""

LOW_POINTS = (1, 2, 3, 4)
"""The batches below ``p1`` whose language passes a basis keeps too (those of them below it), so it derives every
batch from the first of them on."""


class BatchDeriveError(DeriveError):
    """The basis does not answer for this batch (or does not reproduce its points); the message says why."""


@frozen(kw_only=True)
class MoeLayer:
    """One MoE layer as the routing model sees it."""

    path: str = field(metadata={"help": "module path of the MoE (its experts are <path>.experts.<e>)"})
    layer_idx: int = field(metadata={"help": "the routing model's layer index"})
    experts: int = field(metadata={"help": "E, routed experts"})
    top_k: int = field(metadata={"help": "k, experts per token"})
    fused: bool = field(
        default=False,
        metadata={
            "help": "its experts are one module (<path>.experts) that calls them one by one in ascending slice "
            "size: a peak of it or under it is that of its last call (DeepSeek-OCR-2 through transformers)"
        },
    )


LAST = -1
"""The expert of a member ``(position, LAST)``: a fused MoE layer's last expert call (:attr:`MoeLayer.fused`), which
holds the largest slice and has every other called expert's output alive."""


@frozen(kw_only=True)
class MemberLaw:
    """Peak of one routed expert's call (or of a submodule's): ``alpha + beta*B + gamma*prefix + delta*size``."""

    alpha: Fraction = field(metadata={"help": "bytes"})
    beta: Fraction = field(metadata={"help": "bytes per batch row"})
    gamma: Fraction = field(metadata={"help": "bytes per token dispatched before this expert"})
    delta: Fraction = field(metadata={"help": "bytes per token of this expert's slice"})
    size_line: tuple[Fraction, Fraction] | None = field(
        default=None,
        metadata={
            "help": "(c0, c1): a fused layer's law fitted where its last slice was c0 + c1*B at every observation "
            "(then delta is 0 and the law holds only where the slice stays on that line); None otherwise"
        },
    )

    def at(self, *, batch: int, prefix: int, size: int) -> Fraction:
        """The law's value."""
        return self.alpha + self.beta * batch + self.gamma * prefix + self.delta * size


@frozen(kw_only=True)
class BatchBasis:
    """What derives the language passes of a trace at another batch (module docstring)."""

    points: tuple[int, int, int] = field(metadata={"help": "p1 < p2 < p3, the traced batches"})
    passes: Mapping[int, Mapping[str, NodeData]] = field(
        metadata={
            "help": "point (low ones too) -> pass (prefill, step:<i>) -> node data of its language stages (of every "
            "stage when there are no rows)"
        }
    )
    tokens: Mapping[str, int] = field(metadata={"help": "pass -> tokens per batch row (S for the prefill, 1 a step)"})
    moe: tuple[MoeLayer, ...] = field(metadata={"help": "the MoE layers, in call order"})
    members: Mapping[NodeKey, tuple[tuple[int, int], ...]] = field(
        metadata={
            "help": "(stage, pattern) of routed experts (or a submodule of them) -> (MoE layer position, expert; "
            "LAST: a fused layer's last call)"
        }
    )
    laws: Mapping[tuple[str, NodeKey], MemberLaw] = field(metadata={"help": "(pass, (stage, pattern)) -> peak law"})
    rows: Mapping[int, RawTrace] = field(
        metadata={
            "help": "the prefill's vision and projector stages at batch 1, 2, 3; none for a source whose vision "
            "encodes every row in one call (its prefill passes hold every stage)"
        }
    )
    row_patterns: Mapping[tuple[str, str], Pattern] = field(metadata={"help": "(stage, path) -> node pattern"})
    decode_steps: int = field(metadata={"help": "n0, decode steps of the traces (the same at every batch)"})
    far: int | None = field(metadata={"help": "the far decode step traced too (None: none)"})
    buckets: Mapping[str, tuple[str, str, str]] = field(metadata={"help": "op -> (bucket, rule, reason)"})
    low: tuple[int, ...] = field(
        default=(), metadata={"help": "batches below p1 (ascending) whose language passes are kept too; () none"}
    )
    moe_of: Mapping[NodeKey, tuple[int, ...]] = field(
        factory=dict, metadata={"help": "(stage, pattern) -> the MoE layers (positions) it is or lies under"}
    )

    @property
    def lowest(self) -> int:
        """The lowest batch the basis derives."""
        return self.low[0] if self.low else self.points[0]


# -- routing --------------------------------------------------------------------------------------------------------


def _counts(layer: MoeLayer, routing: RoutingModel, tokens: int) -> tuple[int, ...]:
    return routing.expert_counts(
        layer_idx=layer.layer_idx, num_tokens=tokens, num_experts=layer.experts, top_k=layer.top_k
    )


def called_experts(
    moe: Sequence[MoeLayer], routing: RoutingModel, tokens: Mapping[str, int], batch: int
) -> tuple[tuple[int, ...], ...]:
    """For every pass kind (distinct tokens per row) and MoE layer: the experts the routing model sends tokens to."""
    kinds = sorted(set(tokens.values()))
    return tuple(
        tuple(e for e, n in enumerate(_counts(layer, routing, batch * per_row)) if n)
        for per_row in kinds
        for layer in moe
    )


def choose_points(
    moe: Sequence[MoeLayer], routing: RoutingModel, tokens: Mapping[str, int], *, low: int, high: int
) -> tuple[int, int, int] | None:
    """Three batches ``low <= p1 < p2 < p3 = high`` with ``high``'s expert coverage (``p1`` the smallest such batch,
    ``p2`` the one nearest their geometric mean: under a steep skew the routing model's coverage is not monotone in
    the batch, so some batches between them call other experts; those are checked when derived); None when fewer
    than three batches qualify."""
    target = called_experts(moe, routing, tokens, high)
    p1 = next((b for b in range(low, high + 1) if called_experts(moe, routing, tokens, b) == target), high)
    if high - p1 < 2:
        return None
    mean = min(max(round(math.sqrt(p1 * high)), p1 + 1), high - 1)
    nearest = sorted(range(p1 + 1, high), key=lambda b: (abs(b - mean), b))
    p2 = next((b for b in nearest if called_experts(moe, routing, tokens, b) == target), None)
    return None if p2 is None else (p1, p2, high)


def low_points(p1: int) -> tuple[int, ...]:
    """The :data:`LOW_POINTS` below ``p1``."""
    return tuple(q for q in LOW_POINTS if q < p1)


def member_layout(layer: MoeLayer, routing: RoutingModel, tokens: int) -> dict[int, tuple[int, int]]:
    """(prefix, size) of each expert of ``layer`` for ``tokens`` tokens: its slice and the tokens dispatched
    before it (experts in index order); of a fused layer, of its last call (:data:`LAST`) too: the largest slice,
    and every other routed token before it."""
    counts = _counts(layer, routing, tokens)
    out: dict[int, tuple[int, int]] = {}
    start = 0
    for e, size in enumerate(counts):
        out[e] = (start, size)
        start += size
    if layer.fused:
        largest = max(counts, default=0)
        out[LAST] = (start - largest, largest)
    return out


# -- the member law -------------------------------------------------------------------------------------------------


def fit_member_law(observations: Sequence[tuple[int, int, int, int]], *, fused: bool = False) -> MemberLaw | None:
    """The law through every ``(batch, prefix, size, peak)`` observation, solved exactly; None if none fits all.

    Four independent observations are picked by fraction-free elimination over the integers (each new row is
    reduced against the rows kept so far: ``r <- a*r - c*pivot``, a scaling that keeps its zeros and its
    inconsistency), the law is solved from them in fractions, and every observation is checked in integers (the
    law times the common denominator of its coefficients).

    ``fused``: the observations are a fused layer's last calls (:data:`LAST`), whose prefix is every routed token
    but the slice, ``k*T(B) - size``, affine in the batch and the size: the law is ``alpha + beta*B + delta*size``
    (``gamma`` 0), from three independent observations, and kept only when at least one more checks it.  Where the
    slice lies on a line in the batch at every observation (the skewed routing model gives its first expert one
    slot of every token), the law is ``alpha + beta*B`` on that line (:attr:`MemberLaw.size_line`)."""
    line = _size_line(observations) if fused else None
    # the coefficients solved for (alpha, beta, gamma, delta = 0, 1, 2, 3); the others are 0
    solved_for = (0, 1, 2, 3) if not fused else (0, 1, 3) if line is None else (0, 1)
    width = len(solved_for)
    pivots: list[list[int]] = []
    checked = False
    for batch, prefix, size, peak in dict.fromkeys(observations):  # (a repeated one checks nothing)
        terms = (1, batch, prefix, size)
        row = _eliminated([*(terms[i] for i in solved_for), peak], pivots, width)
        if any(row[:width]):
            pivots.append(row)
            if len(pivots) == width and not fused:
                break
        elif row[width]:
            return None  # in the span of the rows kept, with another value: no law fits both
        else:
            checked = True
    if len(pivots) < width or (fused and not checked):
        return None
    solved = _solve([[Fraction(v) for v in row] for row in pivots], width)
    if solved is None:
        return None
    coefficients = [Fraction(0)] * 4
    for i, value in zip(solved_for, solved, strict=True):
        coefficients[i] = value
    law = MemberLaw(
        alpha=coefficients[0], beta=coefficients[1], gamma=coefficients[2], delta=coefficients[3], size_line=line
    )
    scale = math.lcm(*(c.denominator for c in coefficients))
    a, b, g, d = (int(c * scale) for c in coefficients)
    if any(a + b * n + g * p + d * s != scale * v for n, p, s, v in observations):
        return None
    return law


def _size_line(observations: Sequence[tuple[int, int, int, int]]) -> tuple[Fraction, Fraction] | None:
    """``(c0, c1)`` when every observation's size is ``c0 + c1*batch`` (two batches at least), else None."""
    sizes = sorted({(batch, size) for batch, _, size, _ in observations})
    (b0, s0), (b1, s1) = sizes[0], sizes[-1]
    if b0 == b1:
        return None
    c1 = Fraction(s1 - s0, b1 - b0)
    c0 = s0 - c1 * b0
    return (c0, c1) if all(size == c0 + c1 * batch for batch, size in sizes) else None


def _eliminated(row: list[int], pivots: list[list[int]], width: int = 4) -> list[int]:
    """``row`` with the pivot column of every row in ``pivots`` (its first non-zero of the ``width``) cleared."""
    for pivot in pivots:
        col = next(i for i in range(width) if pivot[i])
        if row[col]:
            keep, take = pivot[col], row[col]
            row = [keep * x - take * y for x, y in zip(row, pivot, strict=True)]
    return row


def _solve(rows: list[list[Fraction]], width: int = 4) -> list[Fraction] | None:
    """Back-substitution of ``width`` independent echelon rows (pivot columns in any order)."""
    solution: dict[int, Fraction] = {}
    for row in reversed(rows):
        col = next(i for i, v in enumerate(row[:width]) if v)
        rest = sum((row[i] * solution.get(i, Fraction(0)) for i in range(width) if i != col), Fraction(0))
        solution[col] = (row[width] - rest) / row[col]
    if len(solution) != width:
        return None
    return [solution[i] for i in range(width)]


# -- deriving a pass ------------------------------------------------------------------------------------------------


def derive_pass(basis: BatchBasis, name: str, *, batch: int, routing: RoutingModel) -> NodeData:
    """The language node data of pass ``name`` at ``batch`` (a sort's comparisons by their own rule; below ``p1``
    the low points' laws, :class:`_Value`; from ``p1`` on only at ``p3``'s expert coverage).  Raises
    :class:`BatchDeriveError`."""
    p3 = basis.points[-1]
    if not basis.lowest <= batch <= p3:
        raise BatchDeriveError(f"batch {batch} is outside the {basis.lowest}..{p3} the basis answers for")
    data = [basis.passes[p][name] for p in basis.points]
    full = _full_coverage(basis, routing, batch)
    if not full and batch >= basis.points[0]:
        raise BatchDeriveError(f"batch {batch} routes to other experts than the basis's batches")
    low = {} if full else {q: basis.passes[q][name] for q in basis.low}
    value = _Value(basis, name, batch=batch, routing=routing, full=full)
    every = [*data, *low.values()]
    out = NodeData()
    zero = Counters()
    for key in ordered_keys(d.table for d in every):
        nk = (key[0], key[1])
        rows = [d.table.get(key, zero) for d in data]
        low_rows = {q: d.table.get(key, zero) for q, d in low.items()}
        sort = basis.buckets.get(key[3], ("", "", ""))[2] == SORT_RULE
        fields = [f for f in COST_FIELDS if not (sort and f == "vector_flops")]
        values = {
            f: value.counter(
                f"{key} {f}", nk, [getattr(r, f) for r in rows], {q: getattr(r, f) for q, r in low_rows.items()}
            )
            for f in fields
        }
        if sort:
            values["vector_flops"] = value.sort_flops(key, rows, low_rows, values["kernels"])
        out.table[key] = Counters(**values)
    for attr in ("calls", "kv_held"):
        maps = [getattr(d, attr) for d in data]
        low_maps = {q: getattr(d, attr) for q, d in low.items()}
        target: dict[NodeKey, int] = getattr(out, attr)
        for nk in ordered_keys(getattr(d, attr) for d in every):
            target[nk] = value.counter(
                f"{attr} of {nk}", nk, [m.get(nk, 0) for m in maps], {q: m.get(nk, 0) for q, m in low_maps.items()}
            )
    expert_peaks = value.experts_at(batch)
    for nk in ordered_keys(d.peaks for d in every):
        if nk in expert_peaks:
            out.peaks[nk] = expert_peaks[nk]
            continue
        below = _under(expert_peaks, nk)
        at_points = [d.peaks.get(nk, 0) for d in data]
        if full and value.experts_peak(nk, at_points):
            out.peaks[nk] = max(below)
        elif full:
            level = _affine(f"peak of {nk}", at_points, basis.points, batch)
            out.peaks[nk] = max([level, *below])
        else:
            out.peaks[nk] = value.low_peak(nk, at_points, [low[q].peaks.get(nk, 0) for q in basis.low], below)
    return out


class _Value:
    """Values of one pass at ``batch`` from the basis's points and, below ``p1``, its low points.

    From ``p1`` on, every counter is affine in ``B`` (module docstring).  Below it, MoE layers call fewer experts:
    a counter of a node at or under MoE layers is ``line(B) + c * (N(B) - N(p3))``, where ``line`` is its line
    through the three points and ``N(B)`` the experts the routing model has those layers call at ``B`` (their own
    ops, and their experts', cost the same per called expert plus an amount per routed token, which is affine in
    ``B``); ``c`` is solved at the first low point that calls other experts than ``p3`` and checked at the others
    (:func:`check_basis`).  A peak below ``p1`` is the largest of the line through the points, the line through the
    low points (levels that only small batches reach: a routing buffer above a one-token expert call) and its routed
    experts' peaks."""

    def __init__(self, basis: BatchBasis, name: str, *, batch: int, routing: RoutingModel, full: bool) -> None:
        self.basis = basis
        self.batch = batch
        self.below_p1 = not full
        self.tokens = basis.tokens[name]
        self.routing = routing
        self.name = name
        self._called: dict[int, tuple[int, ...]] = {}
        self._n: dict[tuple[NodeKey, int], int] = {}
        self._experts: dict[int, dict[NodeKey, int]] = {}
        self._fused = [nk for nk, members in basis.members.items() if any(e == LAST for _, e in members)]

    def called(self, nk: NodeKey, batch: int) -> int:
        """``N``: the experts the MoE layers at or above ``nk`` call at ``batch`` rows of this pass."""
        found = self._n.get((nk, batch))
        if found is None:
            per_layer = self._called.get(batch)
            if per_layer is None:
                per_layer = self._called[batch] = tuple(
                    sum(1 for n in _counts(layer, self.routing, batch * self.tokens) if n) for layer in self.basis.moe
                )
            found = self._n[(nk, batch)] = sum(per_layer[pos] for pos in self.basis.moe_of.get(nk, ()))
        return found

    def counter(self, name: str, nk: NodeKey, full: Sequence[int], low: Mapping[int, int]) -> int:
        """An additive value (module docstring), a non-negative integer."""
        if not self.below_p1:
            return _affine(name, full, self.basis.points, self.batch)
        p3 = self.basis.points[-1]
        n_full, n = self.called(nk, p3), self.called(nk, self.batch)
        if n == n_full:  # (every node outside the MoE layers, and these when they call every expert already)
            return _affine(name, full, self.basis.points, self.batch)
        q = next((q for q in self.basis.low if self.called(nk, q) != n_full), None)
        if q is None:
            raise BatchDeriveError(f"{name}: no low point calls other experts than batch {p3}")
        # line(B) + (v_q - line(q)) * (n - n_full) / (N(q) - n_full), in integers over one denominator (this runs
        # for every counter of every MoE node): line(x) = (v1 * run + (v2 - v1) * (x - b1)) / run
        (b1, b2, b3), (v1, v2, v3) = self.basis.points, full
        run, rise = b2 - b1, v2 - v1
        if rise * (b3 - b1) != (v3 - v1) * run:
            raise BatchDeriveError(f"{name}: {v1}, {v2}, {v3} at batch {b1}, {b2}, {b3}")
        dq = self.called(nk, q) - n_full
        num = (v1 * run + rise * (self.batch - b1)) * dq + (low[q] * run - v1 * run - rise * (q - b1)) * (n - n_full)
        value, rest = divmod(num, run * dq)
        if rest or value < 0:
            raise BatchDeriveError(f"{name} derives to {Fraction(num, run * dq)}, not a non-negative integer")
        return value

    def sort_flops(
        self, key: tuple[str, Pattern, str, str], rows: Sequence[Counters], low: Mapping[int, Counters], calls: int
    ) -> int:
        """A sort's comparisons: its per-call length derived as a counter, ``calls`` sorts of that length."""
        lengths = [_sort_length_of(key, row) for row in rows]
        if not self.below_p1:
            return calls * _sort_cost(_affine(f"{key} sort length", lengths, self.basis.points, self.batch))
        low_lengths = {q: _sort_length_of(key, row) for q, row in low.items()}
        return calls * _sort_cost(self.counter(f"{key} sort length", (key[0], key[1]), lengths, low_lengths))

    def low_peak(self, nk: NodeKey, full: Sequence[int], low: Sequence[int], experts: Sequence[int]) -> int:
        """A peak below ``p1`` (class docstring): the line through the low points is fitted through those the
        others do not reach (at a larger batch the line through the points takes over); when only one does, its
        level holds there alone (a larger low point is the others' already)."""
        name = f"peak of {nk}"
        # (a node whose peak is its experts' at the points has no line through them: its own levels stay below)
        line = None if self.experts_peak(nk, full) else _line(name, full, self.basis.points)
        above = [
            (q, v)
            for q, v in zip(self.basis.low, low, strict=True)
            if v > max([*([line(q)] if line else []), *map(Fraction, _under(self.experts_at(q), nk))])
        ]
        levels = [*([line(self.batch)] if line else []), *map(Fraction, experts)]
        if len(above) > 1:
            levels.append(_line(name, [v for _, v in above], [q for q, _ in above])(self.batch))
        elif above and above[0][0] == self.batch:
            levels.append(Fraction(above[0][1]))
        elif above and self.batch > above[0][0] == self.basis.low[-1]:
            raise BatchDeriveError(f"{name}: only batch {above[0][0]} reaches its small-batch level")
        # else one low point reaches it, and a larger one no longer does: from there on the others are above it
        return _integer(name, max(levels))

    def experts_peak(self, nk: NodeKey, full: Sequence[int]) -> bool:
        """Whether the peak of ``nk`` (not a routed expert's) is that of fused experts under it at each of the three
        points (``full``, its peaks there): a fused MoE layer's (:attr:`MoeLayer.fused`) and those above it, whose
        largest level is inside its experts' last call.  Then it is theirs at every batch (its own levels are affine
        and below theirs at the points, on which :func:`check_basis` insists; the tests compare many batches).  Not
        for per-expert modules (DeepSeek-OCR v1): a node above them must have its own peak above theirs."""
        if not self._fused_under(nk):
            return False
        return all(
            (below := _under(self.experts_at(p), nk)) and nk not in self.experts_at(p) and v == max(below)
            for p, v in zip(self.basis.points, full, strict=True)
        )

    def _fused_under(self, nk: NodeKey) -> bool:
        """Whether a fused layer's last call (:data:`LAST`) is among the members at or under ``nk``."""
        return any(ek[0] == nk[0] and ek[1][: len(nk[1])] == nk[1] for ek in self._fused)

    def experts_at(self, batch: int) -> dict[NodeKey, int]:
        """The routed experts' peaks of this pass at ``batch``."""
        found = self._experts.get(batch)
        if found is None:
            found = self._experts[batch] = _expert_peaks(self.basis, self.name, batch=batch, routing=self.routing)
        return found


def _under(peaks: Mapping[NodeKey, int], nk: NodeKey) -> list[int]:
    """The values of ``peaks`` at ``nk`` and the nodes under it."""
    return [v for ek, v in peaks.items() if ek[0] == nk[0] and ek[1][: len(nk[1])] == nk[1]]


def _line(name: str, values: Sequence[int], points: Sequence[int]) -> Callable[[int], Fraction]:
    """The line through ``(point, value)`` pairs (every pair on it; else :class:`BatchDeriveError`)."""
    (b1, v1), (bn, vn) = (points[0], values[0]), (points[-1], values[-1])
    slope = Fraction(vn - v1, bn - b1)
    if any(v1 + slope * (b - b1) != v for b, v in zip(points, values, strict=True)):
        raise BatchDeriveError(f"{name}: {', '.join(map(str, values))} at batch {', '.join(map(str, points))}")
    return lambda batch: v1 + slope * (batch - b1)


def _integer(name: str, value: Fraction) -> int:
    if value.denominator != 1 or value < 0:
        raise BatchDeriveError(f"{name} derives to {value}, not a non-negative integer")
    return int(value)


def _sort_length_of(key: tuple[str, Pattern, str, str], row: Counters) -> int:
    """The length of each of a sort row's calls (they must all be as long)."""
    if not row.kernels or row.vector_flops % row.kernels:
        raise BatchDeriveError(f"{key}: the calls of a sort row differ in length")
    n = _sort_length(row.vector_flops // row.kernels)
    if n is None:
        raise BatchDeriveError(f"{key}: {row.vector_flops // row.kernels} comparisons is no n*ceil(log2 n)")
    return n


def _affine(name: str, values: Sequence[int], points: tuple[int, int, int], batch: int) -> int:
    try:
        return affine_at(name, values, points, batch)
    except BatchFitError as exc:
        raise BatchDeriveError(exc.where) from exc


def _sort_length(flops_per_call: int) -> int | None:
    """The ``n`` with ``n * ceil(log2 n) == flops_per_call`` (one sort of ``n`` elements), if there is one."""
    lo, hi = 1, max(2, flops_per_call)
    while lo < hi:
        mid = (lo + hi) // 2
        if _sort_cost(mid) < flops_per_call:
            lo = mid + 1
        else:
            hi = mid
    return lo if _sort_cost(lo) == flops_per_call else None


def _sort_cost(n: int) -> int:
    """Comparisons of one sort of ``n`` elements as the tracer counts them."""
    return sort_flops(numel=n, n=n)


def _expert_peaks(basis: BatchBasis, name: str, *, batch: int, routing: RoutingModel) -> dict[NodeKey, int]:
    tokens = batch * basis.tokens[name]
    layouts = [member_layout(layer, routing, tokens) for layer in basis.moe]
    out: dict[NodeKey, int] = {}
    for nk, members in basis.members.items():
        law = basis.laws.get((name, nk))
        if law is None:
            continue
        # in integers over the common denominator (this runs for every routed expert of every pattern and pass)
        den = math.lcm(law.alpha.denominator, law.beta.denominator, law.gamma.denominator, law.delta.denominator)
        base = int(law.alpha * den) + int(law.beta * den) * batch
        gamma, delta = int(law.gamma * den), int(law.delta * den)
        if law.size_line is not None and any(
            layouts[pos][e][1] != law.size_line[0] + law.size_line[1] * batch for pos, e in members
        ):
            raise BatchDeriveError(f"the last slice of {nk} at batch {batch} is off the line its law was fitted on")
        called = [gamma * layouts[pos][e][0] + delta * layouts[pos][e][1] for pos, e in members if layouts[pos][e][1]]
        if not called:
            raise BatchDeriveError(f"no routed expert of {nk} is called at batch {batch}")
        best = max(called)
        peak, rest = divmod(base + best, den)
        if rest or peak < 0:
            raise BatchDeriveError(f"expert peak of {nk} at batch {batch} is {Fraction(base + best, den)}")
        out[nk] = peak
    return out


def check_basis(basis: BatchBasis, *, routing: RoutingModel) -> None:
    """Derive every pass at the three points and the low ones and compare with what was traced;
    :class:`BatchDeriveError` names the first difference.  Also: the nodes above routed experts must have their own
    levels above their experts' at the three points, or their experts' peak at all three."""
    target = called_experts(basis.moe, routing, basis.tokens, basis.points[-1])
    for point in (*basis.low, *basis.points):
        full = point >= basis.points[0]
        if full and called_experts(basis.moe, routing, basis.tokens, point) != target:
            raise BatchDeriveError(f"batch {point} routes to other experts than batch {basis.points[-1]}")
        for name, traced in basis.passes[point].items():
            derived = derive_pass(basis, name, batch=point, routing=routing)
            for attr in ("table", "calls", "peaks", "kv_held"):
                if getattr(derived, attr) != getattr(traced, attr):
                    raise BatchDeriveError(f"{name} at batch {point}: the derived {attr} differ from the traced")
            if not full:
                continue
            value = _Value(basis, name, batch=point, routing=routing, full=True)
            experts = value.experts_at(point)
            for nk, level in traced.peaks.items():
                below = [] if nk in experts else _under(experts, nk)
                if below and level <= max(below) and not value.experts_peak(nk, _at(basis, name, nk)):
                    raise BatchDeriveError(f"peak of {nk} at batch {point} is its routed experts' ({level})")


def _at(basis: BatchBasis, name: str, nk: NodeKey) -> list[int]:
    """The peaks of ``nk`` in pass ``name`` at the three points."""
    return [basis.passes[p][name].peaks.get(nk, 0) for p in basis.points]


# -- a whole trace --------------------------------------------------------------------------------------------------


class _Patterns:
    """``pattern(path)`` of one stage from a stored map (what :func:`to_node_data` asks of a grouping)."""

    def __init__(self, stage: str, patterns: Mapping[tuple[str, str], Pattern]) -> None:
        self.stage = stage
        self.patterns = patterns

    def pattern(self, path: str) -> Pattern:
        return self.patterns[(self.stage, path)]


def answers_for(basis: BatchBasis, routing: RoutingModel, batch: int) -> bool:
    """Whether :func:`derive_batch` derives ``batch`` rather than refusing it (its range, and from ``p1`` on only at
    ``p3``'s expert coverage)."""
    if not basis.lowest <= batch <= basis.points[-1]:
        return False
    return batch < basis.points[0] or _full_coverage(basis, routing, batch)


def _full_coverage(basis: BatchBasis, routing: RoutingModel, batch: int) -> bool:
    """Whether ``batch`` is in the points' range and calls the experts ``p3`` calls (then every counter is affine)."""
    p1, _, p3 = basis.points
    if not p1 <= batch <= p3:
        return False
    return called_experts(basis.moe, routing, basis.tokens, batch) == called_experts(
        basis.moe, routing, basis.tokens, p3
    )


def derive_batch(
    basis: BatchBasis, skeleton: TraceResult, *, batch: int, routing: RoutingModel, workload: str
) -> tuple[TraceResult, DecodeBasis | None]:
    """The trace at ``batch`` rows: ``skeleton`` (a trace of the same shapes at another batch: names, classes,
    weights) with the counters derived from ``basis``, and its decode basis.  Raises :class:`BatchDeriveError`."""
    if not basis.lowest <= batch <= basis.points[-1]:
        raise BatchDeriveError(f"batch {batch} is outside the {basis.lowest}..{basis.points[-1]} the basis answers for")
    full = _full_coverage(basis, routing, batch)
    if not full and (batch >= basis.points[0] or not basis.low):  # (the laws below p1 are not checked above it)
        raise BatchDeriveError(f"batch {batch} routes to other experts than the basis's batches")
    prefill = _rows_at(basis, batch)
    prefill.add(derive_pass(basis, PREFILL, batch=batch, routing=routing))
    names = [name for name in basis.passes[basis.points[0]] if name != PREFILL]
    steps = {int(name.split(":")[1]): derive_pass(basis, name, batch=batch, routing=routing) for name in names}
    far = steps.pop(basis.far) if basis.far is not None and basis.far in steps else None
    data = NodeData()
    data.add(prefill)
    n = basis.decode_steps
    try:
        if skeleton.decode_method == "affine-fit":
            data.add(fit_steps(steps, n))
        elif steps:
            data.add(integrate(steps))
    except AffineFitError as exc:
        raise BatchDeriveError(f"not affine in the step at batch {batch}: {exc.where}") from exc
    counted = frozenset(op for op, (bucket, _, _) in basis.buckets.items() if bucket == "counted")
    rollups = {stage: StageRollup(stage, data, counted) for stage in active_stages(data)}
    nodes = nodes_with_counts(skeleton.nodes, rollups, decode_steps=n)
    ledger, unsupported = build_ledger(data, basis.buckets)
    p3 = basis.points[-1]
    coverage = f"expert coverage as at {p3}" if full else "expert coverage from the routing model"
    result = evolve(
        skeleton,
        workload=workload,
        nodes=nodes,
        op_ledger=ledger,
        unsupported=unsupported,
        batch_method="extrapolated",
        batch_note=f"{_row_note(basis)} derived at batch {batch} from batch "
        f"{', '.join(map(str, (*basis.low, *basis.points)))} ({coverage}, exact on {basis.lowest}..{p3})",
    )
    far_step = (basis.far, far) if basis.far is not None and far is not None else None
    fitted = (
        decode_basis(prefill, steps, far_step, decode_steps=n, buckets=basis.buckets)
        if skeleton.decode_method == "affine-fit"
        else None
    )
    return result, fitted


def _rows_at(basis: BatchBasis, batch: int) -> NodeData:
    """The prefill's vision and projector stages at ``batch`` rows, extrapolated from the basis's rows (none when
    the basis's prefill passes hold every stage)."""
    if not basis.rows:
        return NodeData()
    try:
        rows = extrapolate_stages(basis.rows, batch)
    except BatchFitError as exc:
        raise BatchDeriveError(exc.where) from exc
    stages = {stage for stage, _ in basis.row_patterns}
    return to_node_data(rows, {stage: _Patterns(stage, basis.row_patterns) for stage in stages})


def _row_note(basis: BatchBasis) -> str:
    """How the batch note says the stages were derived."""
    if not basis.rows:
        return "every stage"
    return f"vision and projector extrapolated from batch {', '.join(map(str, sorted(basis.rows)))}; language"


# -- JSON (the trace cache keeps a batch basis beside the trace it came from) -----------------------------------------


def batch_basis_to_json(basis: BatchBasis) -> dict[str, Any]:
    """``basis`` as JSON-able data (fractions as ``"p/q"`` strings, patterns as lists)."""
    return {
        "points": list(basis.points),
        "passes": [
            {"point": p, "pass": name, "data": data_to_json(data)}
            for p, named in basis.passes.items()
            for name, data in named.items()
        ],
        "tokens": dict(basis.tokens),
        "moe": [[m.path, m.layer_idx, m.experts, m.top_k, m.fused] for m in basis.moe],
        "members": [
            {"stage": st, "pattern": list(pat), "members": [list(m) for m in ms]}
            for (st, pat), ms in basis.members.items()
        ],
        "laws": [
            {
                "pass": name,
                "stage": st,
                "pattern": list(pat),
                "law": [str(law.alpha), str(law.beta), str(law.gamma), str(law.delta)],
                "size_line": None if law.size_line is None else [str(c) for c in law.size_line],
            }
            for (name, (st, pat)), law in basis.laws.items()
        ],
        "rows": [{"batch": b, "raw": _raw_to_json(raw)} for b, raw in basis.rows.items()],
        "row_patterns": [[st, path, list(pat)] for (st, path), pat in basis.row_patterns.items()],
        "decode_steps": basis.decode_steps,
        "far": basis.far,
        "buckets": {op: list(b) for op, b in basis.buckets.items()},
        "low": list(basis.low),
        "moe_of": [{"stage": st, "pattern": list(pat), "layers": list(pos)} for (st, pat), pos in basis.moe_of.items()],
    }


def batch_basis_from_json(raw: Mapping[str, Any]) -> BatchBasis:
    """The basis :func:`batch_basis_to_json` wrote (KeyError/TypeError/ValueError on anything else)."""
    passes: dict[int, dict[str, NodeData]] = {}
    for item in raw["passes"]:
        passes.setdefault(int(item["point"]), {})[str(item["pass"])] = data_from_json(item["data"])
    p1, p2, p3 = (int(p) for p in raw["points"])
    return BatchBasis(
        points=(p1, p2, p3),
        passes=passes,
        tokens={str(k): int(v) for k, v in raw["tokens"].items()},
        moe=tuple(
            MoeLayer(path=str(m[0]), layer_idx=int(m[1]), experts=int(m[2]), top_k=int(m[3]), fused=bool(m[4]))
            for m in raw["moe"]
        ),
        members={
            (str(m["stage"]), tuple(map(str, m["pattern"]))): tuple((int(a), int(b)) for a, b in m["members"])
            for m in raw["members"]
        },
        laws={
            (str(w["pass"]), (str(w["stage"]), tuple(map(str, w["pattern"])))): MemberLaw(
                alpha=Fraction(w["law"][0]),
                beta=Fraction(w["law"][1]),
                gamma=Fraction(w["law"][2]),
                delta=Fraction(w["law"][3]),
                size_line=None if w["size_line"] is None else _fractions(w["size_line"]),
            )
            for w in raw["laws"]
        },
        rows={int(r["batch"]): _raw_from_json(r["raw"]) for r in raw["rows"]},
        row_patterns={(str(st), str(path)): tuple(map(str, pat)) for st, path, pat in raw["row_patterns"]},
        decode_steps=int(raw["decode_steps"]),
        far=None if raw["far"] is None else int(raw["far"]),
        buckets={str(op): (str(b[0]), str(b[1]), str(b[2])) for op, b in raw["buckets"].items()},
        low=tuple(int(q) for q in raw["low"]),
        moe_of={(str(m["stage"]), tuple(map(str, m["pattern"]))): tuple(map(int, m["layers"])) for m in raw["moe_of"]},
    )


def _fractions(values: Sequence[str]) -> tuple[Fraction, Fraction]:
    """Two fractions from their JSON strings."""
    first, second = values
    return Fraction(first), Fraction(second)


def _raw_to_json(raw: RawTrace) -> dict[str, Any]:
    return {
        "table": [[*key, row.as_dict()] for key, row in raw.table.items()],
        **{name: [[*key, v] for key, v in getattr(raw, name).items()] for name in ("calls", "peaks", "kv_held")},
        "sigs": [[*key, list(events)] for key, events in raw.sigs.items()],
        "chain": [[*key, *pair] for key, pair in raw.chain.items()],
        "op_buckets": {op: list(b) for op, b in raw.op_buckets.items()},
    }


def _raw_from_json(data: Mapping[str, Any]) -> RawTrace:
    raw = RawTrace()
    for st, path, cat, op, counters in data["table"]:
        raw.table[(str(st), str(path), str(cat), str(op))] = Counters.from_mapping(counters)
    for name in ("calls", "peaks", "kv_held"):
        target: dict[tuple[str, str], int] = getattr(raw, name)
        for st, path, v in data[name]:
            target[(str(st), str(path))] = int(v)
    raw.sigs = {(str(st), str(path)): dict.fromkeys(map(str, events)) for st, path, events in data["sigs"]}
    raw.chain = {(str(st), str(path)): [int(a), int(b)] for st, path, a, b in data["chain"]}
    raw.op_buckets = {str(op): (str(b[0]), str(b[1]), str(b[2])) for op, b in data["op_buckets"].items()}
    return raw
