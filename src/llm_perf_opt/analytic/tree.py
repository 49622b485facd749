"""The analytic cost tree: module id -> inclusive :class:`~llm_perf_opt.core.Cost`, built fast.

Composition adds into mutable :class:`~llm_perf_opt.core.counts.Counters` (``Cost``'s fields, one record per node
and category) and builds ``Cost`` objects only when a node is read, so one evaluation of the whole model takes
about a millisecond.  Node ids follow docs/architecture.md
(``root``, the stage names, ``<stage>/<path>`` with grouped index sets); a node's parent is its id minus the last
path component, so the tree is implied by the ids exactly as in the tracer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Protocol

from attrs import evolve, field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import BYTE_FIELDS, Counters, rescale_bytes
from llm_perf_opt.core.paths import split_module_path

__all__ = ["AnalyticTree", "Recorder", "Recording", "Sink", "TreeBuilder", "chain", "components", "parent_id", "vec"]

_ZERO = Cost()


@lru_cache(maxsize=8192)
def components(path: str) -> tuple[str, ...]:
    """Split a module path on dots outside braces: ``a.{1..11}.b`` -> ``(a, {1..11}, b)``."""
    return split_module_path(path)


@lru_cache(maxsize=8192)
def parent_id(node_id: str) -> str | None:
    """``s/a.b`` -> ``s/a``; ``s/a`` -> ``s``; a stage -> ``root``; ``root`` -> None."""
    if node_id == "root":
        return None
    stage, sep, path = node_id.partition("/")
    if not sep:
        return "root"
    parts = components(path)
    return f"{stage}/{'.'.join(parts[:-1])}" if len(parts) > 1 else stage


def vec(cost: Cost) -> tuple[int, ...]:
    """The counters of ``cost`` in ``COST_FIELDS`` order (for composers that combine two costs field by field;
    :meth:`Sink.add` takes such a tuple back)."""
    return (
        cost.matmul_flops,
        cost.matmul_flops_executed,
        cost.vector_flops,
        cost.bytes_read,
        cost.bytes_written,
        cost.weight_bytes_read,
        cost.kv_bytes_read,
        cost.kv_bytes_written,
        cost.kernels,
    )


def _addend(cost: Cost | tuple[int, ...]) -> Cost | Counters:
    """What :meth:`Counters.add` takes: a ``Cost`` as it is, a tuple in ``COST_FIELDS`` order as ``Counters``."""
    return cost if isinstance(cost, Cost) else Counters.from_values(cost)


class Sink(Protocol):
    """Where a composition step charges its costs: a :class:`TreeBuilder`, or a :class:`Recorder` to replay."""

    def node(self, node_id: str, *, calls: int = 0) -> None: ...

    def add(self, node_id: str, category: str, cost: Cost | tuple[int, ...], times: int = 1) -> None: ...

    def add_fused(self, node_id: str, nbytes: int) -> None: ...

    def set_peak(self, node_id: str, nbytes: int) -> None: ...


@lru_cache(maxsize=8192)
def chain(node_id: str) -> tuple[str, ...]:
    """``node_id`` and all its ancestors up to ``root``, nearest first."""
    parent = parent_id(node_id)
    return (node_id,) if parent is None else (node_id, *chain(parent))


def _accumulate(
    target: dict[str, dict[str, Counters]], node_id: str, category: str, values: Cost | Counters, times: int
) -> None:
    cats = target.get(node_id)
    if cats is None:
        cats = target[node_id] = {}
    slot = cats.get(category)
    if slot is None:
        slot = cats[category] = Counters()
    slot.add(values, times)


@frozen
class Recording:
    """Composition steps rolled up once (inclusive within themselves) so a replay is a flat, scaled add."""

    costs: tuple[tuple[str, str, Cost], ...]
    calls: tuple[tuple[str, int], ...]
    fused: tuple[tuple[str, int], ...]
    peaks: tuple[tuple[str, int], ...]


class Recorder:
    """Records ``node``/``add``/``add_fused``/``set_peak`` once for replay into many trees (memoised steps)."""

    def __init__(self) -> None:
        self._costs: dict[str, dict[str, Counters]] = {}
        self._calls: dict[str, int] = {}
        self._fused: dict[str, int] = {}
        self._peaks: dict[str, int] = {}

    def node(self, node_id: str, *, calls: int = 0) -> None:
        for nid in chain(node_id):
            self._costs.setdefault(nid, {})
        if calls:
            self._calls[node_id] = self._calls.get(node_id, 0) + calls

    def add(self, node_id: str, category: str, cost: Cost | tuple[int, ...], times: int = 1) -> None:
        values = _addend(cost)
        for nid in chain(node_id):
            _accumulate(self._costs, nid, category, values, times)

    def add_fused(self, node_id: str, nbytes: int) -> None:
        for nid in chain(node_id):
            self._fused[nid] = self._fused.get(nid, 0) + nbytes

    def set_peak(self, node_id: str, nbytes: int) -> None:
        for nid in chain(node_id):
            self._peaks[nid] = max(self._peaks.get(nid, 0), nbytes)

    def frozen(self) -> Recording:
        costs = tuple((nid, cat, v.to_cost()) for nid, cats in self._costs.items() for cat, v in cats.items())
        bare = tuple((nid, "", _ZERO) for nid, cats in self._costs.items() if not cats)
        return Recording(
            costs=costs + bare,
            calls=tuple(self._calls.items()),
            fused=tuple(self._fused.items()),
            peaks=tuple(self._peaks.items()),
        )


class TreeBuilder:
    """Accumulates inclusive costs per node and category directly (every add walks the node's ancestor chain)."""

    def __init__(self) -> None:
        self.incl: dict[str, dict[str, Counters]] = {"root": {}}
        self.calls: dict[str, int] = {}
        self.weights: dict[str, int] = {}
        self.kv: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.fused: dict[str, int] = {}

    def node(self, node_id: str, *, calls: int = 0) -> None:
        """Make sure ``node_id`` (and its ancestors) exist; add ``calls`` forward calls to it."""
        if node_id not in self.incl:
            for nid in chain(node_id):
                self.incl.setdefault(nid, {})
        if calls:
            self.calls[node_id] = self.calls.get(node_id, 0) + calls

    def add(self, node_id: str, category: str, cost: Cost | tuple[int, ...], times: int = 1) -> None:
        """Charge ``times`` x ``cost`` to ``node_id`` (and so to every ancestor) in ``category``."""
        if times == 0:
            return
        values = _addend(cost)
        for nid in chain(node_id):
            _accumulate(self.incl, nid, category, values, times)

    def replay(self, rec: Recording, times: int) -> None:
        """Apply a recording ``times`` over (costs, calls and fused bytes scaled; peaks as they are)."""
        incl = self.incl
        for nid, category, values in rec.costs:
            if category:
                _accumulate(incl, nid, category, values, times)
            elif nid not in incl:
                incl[nid] = {}
        for nid, n in rec.calls:
            self.calls[nid] = self.calls.get(nid, 0) + n * times
        for nid, n in rec.fused:
            self.fused[nid] = self.fused.get(nid, 0) + n * times
        for nid, n in rec.peaks:
            self.peaks[nid] = max(self.peaks.get(nid, 0), n)

    def merge(self, other: TreeBuilder, times: int) -> None:
        """Add ``times`` copies of ``other``'s inclusive costs, calls and fused bytes (peaks as they are; weights and
        KV are not merged: a pass's builder holds none)."""
        for nid, cats in other.incl.items():
            self.node(nid)
            for category, counters in cats.items():
                _accumulate(self.incl, nid, category, counters, times)
        for nid, n in other.calls.items():
            self.calls[nid] = self.calls.get(nid, 0) + n * times
        for nid, n in other.fused.items():
            self.fused[nid] = self.fused.get(nid, 0) + n * times
        for nid, n in other.peaks.items():
            self.peaks[nid] = max(self.peaks.get(nid, 0), n)

    def add_weights(self, node_id: str, nbytes: int) -> None:
        """Parameters owned by the module(s) of ``node_id``: added to it and its ancestors below ``root``."""
        self.node(node_id)
        for nid in chain(node_id)[:-1]:
            self.weights[nid] = self.weights.get(nid, 0) + nbytes

    def set_kv(self, node_id: str, nbytes: int) -> None:
        """KV bytes held at the end of the stage by ``node_id``'s appends: added to it and its ancestors below
        ``root`` (the root holds the largest stage's, set at build time)."""
        self.node(node_id)
        for nid in chain(node_id)[:-1]:
            self.kv[nid] = self.kv.get(nid, 0) + nbytes

    def set_peak(self, node_id: str, nbytes: int) -> None:
        """A live-activation level reached while ``node_id`` runs (maxima propagate up the tree)."""
        self.node(node_id)
        for nid in chain(node_id):
            self.peaks[nid] = max(self.peaks.get(nid, 0), nbytes)

    def add_fused(self, node_id: str, nbytes: int) -> None:
        """Fused-kernel bytes of kernels run by ``node_id`` (added up the tree)."""
        self.node(node_id)
        for nid in chain(node_id):
            self.fused[nid] = self.fused.get(nid, 0) + nbytes

    def build(self, *, root_weight_bytes: int) -> AnalyticTree:
        """Freeze: children lists from the ids, root weights, root KV = the largest stage's."""
        children: dict[str, list[str]] = {nid: [] for nid in self.incl}
        for nid in self.incl:
            parent = parent_id(nid)
            if parent is not None:
                children[parent].append(nid)
        weights = dict(self.weights)
        weights["root"] = root_weight_bytes
        kv = dict(self.kv)
        kv["root"] = max((kv.get(stage, 0) for stage in children["root"]), default=0)
        ids = self.incl
        return AnalyticTree(
            counters=ids,
            children={nid: tuple(sorted(kids)) for nid, kids in children.items()},
            calls={nid: self.calls.get(nid, 0) for nid in ids},
            weight_bytes={nid: weights.get(nid, 0) for nid in ids},
            kv_cache_bytes={nid: kv.get(nid, 0) for nid in ids},
            peak_activation_bytes={nid: self.peaks.get(nid, 0) for nid in ids},
            fused_bytes={nid: self.fused.get(nid, 0) for nid in ids},
        )


@frozen(kw_only=True)
class AnalyticTree(Mapping[str, Cost]):
    """``module_id -> inclusive Cost`` (a read-only mapping) plus per-node extras.

    ``by_category(id)`` splits a node's cost by operator category (the tracer's categories); ``weight_bytes``
    holds the unique parameter bytes under each node (the root: every parameter), ``kv_cache_bytes`` the KV cache
    a node holds at the end of its stage (stage totals; the root: the largest stage, never a sum of stages),
    ``peak_activation_bytes`` an estimate of live activations (a max), ``fused_bytes`` the fused-kernel traffic.
    """

    counters: Mapping[str, Mapping[str, Counters]] = field(repr=False)
    """node id -> category -> the node's inclusive counters in that category (not to be mutated)."""
    children: Mapping[str, tuple[str, ...]] = field(repr=False)
    calls: Mapping[str, int] = field(repr=False)
    weight_bytes: Mapping[str, int] = field(repr=False)
    kv_cache_bytes: Mapping[str, int] = field(repr=False)
    peak_activation_bytes: Mapping[str, int] = field(repr=False)
    fused_bytes: Mapping[str, int] = field(repr=False)
    _cache: dict[str, Cost] = field(factory=dict, repr=False, eq=False)

    def __getitem__(self, module_id: str) -> Cost:
        found = self._cache.get(module_id)
        if found is None:
            cats = list(self.counters[module_id].values())
            if len(cats) == 1:
                found = cats[0].to_cost()
            else:
                total = Counters()
                for counters in cats:
                    total.add(counters)
                found = total.to_cost()
            self._cache[module_id] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.counters)

    def __len__(self) -> int:
        return len(self.counters)

    def at_element_bytes(self, *, counted: int, target: int) -> AnalyticTree:
        """This tree with every byte count moved from ``counted`` to ``target`` bytes per element (the same floor
        rescale as ``TraceResult.at_element_bytes``, so the two sides stay comparable)."""
        if counted == target:
            return self

        def size(n: int) -> int:
            return rescale_bytes(n, counted=counted, target=target)

        def width(values: Counters) -> Counters:
            out = values.copy()
            for name in BYTE_FIELDS:
                setattr(out, name, size(getattr(values, name)))
            return out

        def sizes(values: Mapping[str, int]) -> dict[str, int]:
            return {nid: size(n) for nid, n in values.items()}

        return evolve(
            self,
            counters={nid: {cat: width(v) for cat, v in cats.items()} for nid, cats in self.counters.items()},
            weight_bytes=sizes(self.weight_bytes),
            kv_cache_bytes=sizes(self.kv_cache_bytes),
            peak_activation_bytes=sizes(self.peak_activation_bytes),
            fused_bytes=sizes(self.fused_bytes),
            cache={},
        )

    def by_category(self, module_id: str) -> dict[str, Cost]:
        """The node's inclusive cost per operator category (categories with a non-zero counter only)."""
        return {cat: counters.to_cost() for cat, counters in self.counters[module_id].items() if counters.any()}

    def categories(self) -> dict[str, dict[str, Cost]]:
        """``by_category`` of every node (the input :func:`llm_perf_opt.perf.tree.tree_from_ids` takes)."""
        return {nid: self.by_category(nid) for nid in self.counters}

    def stage_costs(self) -> dict[str, Cost]:
        """Inclusive cost of each stage node present."""
        return {nid: self[nid] for nid in self.children.get("root", ())}
