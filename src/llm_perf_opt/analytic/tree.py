"""The analytic cost tree: module id -> inclusive :class:`~llm_perf_opt.core.Cost`, built fast.

Composition works on plain integer vectors (one slot per ``Cost`` field) and builds ``Cost`` objects only when a
node is read, so one evaluation of the whole model takes about a millisecond.  Node ids follow docs/architecture.md
(``root``, the stage names, ``<stage>/<path>`` with grouped index sets); a node's parent is its id minus the last
path component, so the tree is implied by the ids exactly as in the tracer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from attrs import field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import COST_FIELDS

__all__ = ["AnalyticTree", "TreeBuilder", "components", "parent_id"]

_NF = len(COST_FIELDS)
_ZERO = (0,) * _NF
Vec = list[int]


def components(path: str) -> list[str]:
    """Split a module path on dots outside braces: ``a.{1..11}.b`` -> ``[a, {1..11}, b]``."""
    if "{" not in path:
        return path.split(".")
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(path):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "." and depth == 0:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    return parts


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
    """The counters of ``cost`` in ``COST_FIELDS`` order."""
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


def _cost(values: Vec | tuple[int, ...]) -> Cost:
    return Cost(**dict(zip(COST_FIELDS, values, strict=True)))


class TreeBuilder:
    """Accumulates each node's *own* cost per category, then rolls up to inclusive totals."""

    def __init__(self) -> None:
        self.own: dict[str, dict[str, Vec]] = {"root": {}}
        self.calls: dict[str, int] = {}
        self.weights: dict[str, int] = {}
        self.kv: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.fused: dict[str, int] = {}

    def node(self, node_id: str, *, calls: int = 0) -> None:
        """Make sure ``node_id`` (and its ancestors) exist; add ``calls`` forward calls to it."""
        if node_id not in self.own:
            self.own[node_id] = {}
            parent = parent_id(node_id)
            if parent is not None:
                self.node(parent)
        if calls:
            self.calls[node_id] = self.calls.get(node_id, 0) + calls

    def add(self, node_id: str, category: str, cost: Cost | tuple[int, ...], times: int = 1) -> None:
        """Charge ``times`` x ``cost`` to ``node_id``'s own ops in ``category``."""
        if times == 0:
            return
        self.node(node_id)
        values = vec(cost) if isinstance(cost, Cost) else cost
        slot = self.own[node_id].get(category)
        if slot is None:
            self.own[node_id][category] = [v * times for v in values]
        else:
            for i, v in enumerate(values):
                slot[i] += v * times

    def add_weights(self, node_id: str, nbytes: int) -> None:
        """Parameters owned directly by the module(s) of ``node_id`` (summed up the tree at build time)."""
        self.node(node_id)
        self.weights[node_id] = self.weights.get(node_id, 0) + nbytes

    def set_kv(self, node_id: str, nbytes: int) -> None:
        """KV bytes held at the end of the stage by ``node_id``'s own appends (summed up the tree)."""
        self.node(node_id)
        self.kv[node_id] = self.kv.get(node_id, 0) + nbytes

    def set_peak(self, node_id: str, nbytes: int) -> None:
        """Peak live activation bytes while ``node_id`` runs (maxima propagate up the tree)."""
        self.node(node_id)
        self.peaks[node_id] = max(self.peaks.get(node_id, 0), nbytes)

    def add_fused(self, node_id: str, nbytes: int) -> None:
        """Fused-kernel bytes of ``node_id``'s own kernels (summed up the tree)."""
        self.node(node_id)
        self.fused[node_id] = self.fused.get(node_id, 0) + nbytes

    def build(self, *, root_weight_bytes: int) -> AnalyticTree:
        """Roll everything up (children before parents) and freeze."""
        order = sorted(self.own, key=_depth, reverse=True)
        incl: dict[str, dict[str, Vec]] = {nid: {c: list(v) for c, v in cats.items()} for nid, cats in self.own.items()}
        weights, kv, fused = dict(self.weights), dict(self.kv), dict(self.fused)
        peaks = dict(self.peaks)
        children: dict[str, list[str]] = {nid: [] for nid in self.own}
        for nid in order:
            parent = parent_id(nid)
            if parent is None:
                continue
            children[parent].append(nid)
            target = incl[parent]
            for cat, values in incl[nid].items():
                slot = target.get(cat)
                if slot is None:
                    target[cat] = list(values)
                else:
                    for i, v in enumerate(values):
                        slot[i] += v
            if parent != "root":
                weights[parent] = weights.get(parent, 0) + weights.get(nid, 0)
            kv[parent] = (
                kv.get(parent, 0) + kv.get(nid, 0) if parent != "root" else max(kv.get("root", 0), kv.get(nid, 0))
            )
            fused[parent] = fused.get(parent, 0) + fused.get(nid, 0)
            peaks[parent] = max(peaks.get(parent, 0), peaks.get(nid, 0))
        weights["root"] = root_weight_bytes
        return AnalyticTree(
            vectors=incl,
            children={nid: tuple(sorted(kids)) for nid, kids in children.items()},
            calls=dict(self.calls),
            weight_bytes=weights,
            kv_cache_bytes=kv,
            peak_activation_bytes=peaks,
            fused_bytes=fused,
        )


def _depth(node_id: str) -> int:
    if node_id == "root":
        return 0
    _stage, sep, path = node_id.partition("/")
    return 1 + (len(components(path)) if sep else 0)


@frozen(kw_only=True)
class AnalyticTree(Mapping[str, Cost]):
    """``module_id -> inclusive Cost`` (a read-only mapping) plus per-node extras.

    ``by_category(id)`` splits a node's cost by operator category (the tracer's categories); ``weight_bytes``
    holds the unique parameter bytes under each node (the root: every parameter), ``kv_cache_bytes`` the KV cache
    a node holds at the end of its stage (stage totals; the root: the largest stage, never a sum of stages),
    ``peak_activation_bytes`` an estimate of live activations (a max), ``fused_bytes`` the fused-kernel traffic.
    """

    vectors: Mapping[str, Mapping[str, Vec]] = field(repr=False)
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
            cats = self.vectors[module_id]
            total = [0] * _NF
            for values in cats.values():
                for i, v in enumerate(values):
                    total[i] += v
            found = self._cache[module_id] = _cost(total)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def by_category(self, module_id: str) -> dict[str, Cost]:
        """The node's inclusive cost per operator category (categories with a non-zero counter only)."""
        return {cat: _cost(values) for cat, values in self.vectors[module_id].items() if any(values)}

    def categories(self) -> dict[str, dict[str, Cost]]:
        """``by_category`` of every node (the input :func:`llm_perf_opt.perf.tree.tree_from_ids` takes)."""
        return {nid: self.by_category(nid) for nid in self.vectors}

    def stage_costs(self) -> dict[str, Cost]:
        """Inclusive cost of each stage node present."""
        return {nid: self[nid] for nid in self.children.get("root", ())}
