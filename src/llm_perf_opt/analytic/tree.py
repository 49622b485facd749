"""The analytic cost tree: a :class:`~llm_perf_opt.core.tree.CostTree` (module id -> inclusive node), built fast.

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

from attrs import frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import BYTE_FIELDS, Counters, rescale_bytes
from llm_perf_opt.core.paths import split_module_path
from llm_perf_opt.core.tree import CostNode, CostTree, stage_of

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


class AnalyticTree(CostTree):
    """The analytic model's :class:`~llm_perf_opt.core.tree.CostTree`, whose nodes are built on first read.

    Besides the nodes it keeps what it was built from, keyed by node id, for readers that want many nodes fast:
    ``counters`` (each category's inclusive :class:`~llm_perf_opt.core.counts.Counters`; not to be mutated),
    ``children``, ``calls``, ``weight_bytes`` (the root: every parameter), ``kv_cache_bytes`` (stage totals; the
    root: the largest stage, never a sum of stages), ``peak_activation_bytes`` (a max) and ``fused_bytes`` (the
    fused-kernel traffic, which no other tree has).
    """

    def __init__(
        self,
        *,
        counters: Mapping[str, Mapping[str, Counters]],
        children: Mapping[str, tuple[str, ...]],
        calls: Mapping[str, int],
        weight_bytes: Mapping[str, int],
        kv_cache_bytes: Mapping[str, int],
        peak_activation_bytes: Mapping[str, int],
        fused_bytes: Mapping[str, int],
    ) -> None:
        self._built: dict[str, CostNode] = {}
        super().__init__(self._built)
        self.counters = counters
        self.children = children
        self.calls = calls
        self.weight_bytes = weight_bytes
        self.kv_cache_bytes = kv_cache_bytes
        self.peak_activation_bytes = peak_activation_bytes
        self.fused_bytes = fused_bytes

    def __getitem__(self, module_id: str) -> CostNode:
        found = self._built.get(module_id)
        if found is None:
            found = self._built[module_id] = self._node(module_id)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.counters)

    def __len__(self) -> int:
        return len(self.counters)

    def __contains__(self, module_id: object) -> bool:
        return module_id in self.counters

    def _node(self, module_id: str) -> CostNode:
        cats = self.counters[module_id]
        by_category = {cat: counters.to_cost() for cat, counters in cats.items() if counters.any()}
        if len(cats) == len(by_category) == 1:
            cost = next(iter(by_category.values()))
        else:
            total = Counters()
            for counters in cats.values():
                total.add(counters)
            cost = total.to_cost()
        path = module_id.partition("/")[2]
        return CostNode(
            module_id=module_id,
            name=_display_name(module_id),
            path=path,
            stage=stage_of(module_id),
            parent_id=parent_id(module_id),
            children=self.children[module_id],
            calls=self.calls.get(module_id, 0),
            cost=cost,
            by_category=by_category,
            weight_bytes=self.weight_bytes.get(module_id, 0),
            peak_activation_bytes=self.peak_activation_bytes.get(module_id, 0),
            kv_cache_bytes=self.kv_cache_bytes.get(module_id, 0),
        )

    def at_element_bytes(self, *, counted: int, target: int) -> AnalyticTree:
        """This tree with every byte count moved from ``counted`` to ``target`` bytes per element (the same floor
        rescale as ``CostNode.at_element_bytes``, so a trace and this tree stay comparable)."""
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

        return AnalyticTree(
            counters={nid: {cat: width(v) for cat, v in cats.items()} for nid, cats in self.counters.items()},
            children=self.children,
            calls=self.calls,
            weight_bytes=sizes(self.weight_bytes),
            kv_cache_bytes=sizes(self.kv_cache_bytes),
            peak_activation_bytes=sizes(self.peak_activation_bytes),
            fused_bytes=sizes(self.fused_bytes),
        )

    def by_category(self, module_id: str) -> dict[str, Cost]:
        """The node's inclusive cost per operator category (categories with a non-zero counter only)."""
        return {cat: counters.to_cost() for cat, counters in self.counters[module_id].items() if counters.any()}

    def categories(self) -> dict[str, dict[str, Cost]]:
        """``by_category`` of every node."""
        return {nid: self.by_category(nid) for nid in self.counters}


def _display_name(module_id: str) -> str:
    """The tracer's short name: the last path component, or the last two when the last is an index (set)."""
    stage, sep, path = module_id.partition("/")
    if not sep:
        return stage
    parts = components(path)
    if parts[-1][:1].isdigit() or parts[-1].startswith("{"):
        return ".".join(parts[-2:])
    return parts[-1]
