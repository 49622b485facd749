"""Roofline time on a named device: per leaf kernel group, max(compute, memory) plus launch overhead.

For the ``K`` kernels of one operator category run directly by one node (its *own* ops, see
:meth:`~llm_perf_opt.core.tree.CostTree.exclusive_by_category`) with ``F_mm`` matmul FLOPs, ``F_vec`` vector FLOPs
and ``B`` bytes moved, taking each kernel as the group average::

    t = K * max(F/K at the compute rate, B/K at the memory rate) + K * t_k
      = max(F_mm / (P_mm * eta_c) + F_vec / (P_vec * eta_c),  B / (W * eta_m))  +  K * t_k

``P_mm`` is the dtype's dense tensor-core peak (plain FP32 for fp32), ``P_vec`` the FP32 non-tensor peak (vector
work - elementwise, norms, softmax, activations - runs on CUDA cores), ``W`` the DRAM bandwidth, ``eta_c`` the
category's efficiency, ``eta_m`` the memory efficiency, ``t_k`` the per-kernel overhead (per stage where the profile
says so). A node's time is the sum over its own groups plus its children's times (kernels run one after another on
one stream).

With a profile's ``overlap`` on, the host and the device work at the same time (asynchronous launches), so a node
(and a stage) takes the larger of its two sides instead of their sum::

    D = sum_j max(compute_j, memory_j) + K * t_d        (device: roofline plus a device gap per kernel)
    H = K * t_k                                         (host: issuing the kernels)
    t = max(D, H)

and the whole run (the root) sums its stages, which follow one another (separated by host waits). Reports split a node's
time into compute-bound, memory-bound and *overhead* = ``t`` minus both (device gaps plus exposed host time).

Left out: overlap between kernels (streams), L2 reuse across kernels (bytes are DRAM traffic as counted),
tail effects of partial waves (folded into the efficiencies), clock throttling, multi-GPU; with overlap, the host
waits inside a stage (upstream's MoE reads its expert counts once per layer), which make the max per segment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from attrs import field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import ROOT_ID, CostTree, stage_of
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec, get_device, normalize_dtype
from llm_perf_opt.perf.efficiency import DeviceProfile, default_profile

__all__ = [
    "GroupTime",
    "NodeTime",
    "Rates",
    "TimedTree",
    "group_time",
    "overlapped_time_s",
    "roofline_time_s",
    "time_tree",
]


def roofline_time_s(
    *,
    F_mm: float,
    F_vec: float,
    B: float,
    K: float,
    P_mm: float,
    P_vec: float,
    W: float,
    eta_c: float,
    eta_m: float,
    t_k: float,
) -> float:
    """``t = max(F_mm/(P_mm*eta_c) + F_vec/(P_vec*eta_c), B/(W*eta_m)) + K*t_k`` (seconds).

    Source: the roofline model (Williams, Waterman, Patterson 2009) applied per kernel group, plus a per-launch term.
    Leaves out overlap between kernels and cache reuse across them.
    """
    compute_s = (F_mm / P_mm + F_vec / P_vec) / eta_c
    memory_s = B / (W * eta_m)
    return max(compute_s, memory_s) + K * t_k


def overlapped_time_s(*, D_roof: float, K: float, t_d: float, t_k: float) -> float:
    """``t = max(D_roof + K*t_d, K*t_k)`` (seconds): device time against host issue time of ``K`` kernels.

    ``D_roof`` is the roofline sum ``sum_j max(compute_j, memory_j)`` of the kernels, ``t_d`` the device's own time
    per kernel beyond it (launch gap, minimum kernel duration), ``t_k`` the host's time to issue one kernel (Python,
    dispatcher, launch call). Source: an asynchronous launch queue - the host enqueues, the device drains, and
    without a host wait in between the slower side sets the pace (what makes batch-1 decoding "launch bound").
    Leaves out: host waits inside the span (each one makes the max per segment), queue-depth limits, pipeline fill.
    """
    return max(D_roof + K * t_d, K * t_k)


@frozen(kw_only=True)
class Rates:
    """Everything the roofline needs about one (device, dtype, profile): peaks and efficiencies.

    ``bytes_scale`` converts the counted bytes (counted in ``counted_dtype``, normally bf16) to ``dtype``: every
    byte - weights, activations, KV - is taken to change storage width together (a what-if; fp32 logits and
    mixed-precision schemes are not modelled separately).
    """

    device_id: str = field(metadata={"help": "catalog id"})
    dtype: str = field(metadata={"help": "compute/storage dtype"})
    matmul_peak_flops: float = field(metadata={"help": "dense tensor-core FLOP/s for dtype"})
    vector_peak_flops: float = field(metadata={"help": "FP32 non-tensor FLOP/s"})
    memory_bandwidth_bytes_per_s: float = field(metadata={"help": "peak DRAM B/s"})
    profile: DeviceProfile = field(metadata={"help": "efficiencies and per-kernel overhead"})
    bytes_scale: float = field(default=1.0, metadata={"help": "bytes(dtype)/bytes(counted dtype)"})

    @classmethod
    def for_device(
        cls,
        device: DeviceSpec | str,
        *,
        dtype: str = "bf16",
        profile: DeviceProfile | None = None,
        execution: str = "eager",
        counted_dtype: str = "bf16",
    ) -> Rates:
        """Resolve ``device`` (spec or id), ``dtype`` and a profile (default: the documented defaults for
        ``execution``); unknown device or dtype -> :class:`~llm_perf_opt.errors.UserError` listing the allowed."""
        spec = get_device(device) if isinstance(device, str) else device
        name = normalize_dtype(dtype)
        chosen = profile if profile is not None else default_profile(execution)
        chosen.check_device(spec.device_id)
        return cls(
            device_id=spec.device_id,
            dtype=name,
            matmul_peak_flops=spec.matmul_peak_flops(name),
            vector_peak_flops=spec.vector_peak_flops,
            memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
            profile=chosen,
            bytes_scale=BYTES_PER_ELEMENT[name] / BYTES_PER_ELEMENT[normalize_dtype(counted_dtype)],
        )


@frozen(kw_only=True)
class GroupTime:
    """Time of one kernel group, split into its bound terms (``total_s = max(compute, memory) + overhead``)."""

    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.overhead_s

    @property
    def bound(self) -> str:
        """``compute`` or ``memory``: which term of the max wins (ties: compute)."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


def group_time(cost: Cost, category: str, rates: Rates, *, stage: str = "other") -> GroupTime:
    """The roofline terms of one kernel group (``cost`` = the group's counts, ``category`` its operator category,
    ``stage`` the stage it runs in, which picks the per-kernel overhead)."""
    eta_c = rates.profile.efficiency(category)
    compute_s = (
        cost.matmul_flops_executed / rates.matmul_peak_flops + cost.vector_flops / rates.vector_peak_flops
    ) / eta_c
    memory_s = (
        cost.total_bytes * rates.bytes_scale / (rates.memory_bandwidth_bytes_per_s * rates.profile.memory_efficiency)
    )
    return GroupTime(
        compute_s=compute_s, memory_s=memory_s, overhead_s=cost.kernels * rates.profile.kernel_overhead(stage)
    )


@frozen(kw_only=True)
class NodeTime:
    """Inclusive time of a node by what bounds it: ``total_s = compute_bound_s + memory_bound_s + overhead_s``."""

    total_s: float = field(metadata={"help": "inclusive seconds"})
    own_s: float = field(metadata={"help": "seconds of the node's own ops (not its children's)"})
    compute_bound_s: float = field(metadata={"help": "seconds of kernel groups where compute wins the max"})
    memory_bound_s: float = field(metadata={"help": "seconds of kernel groups where memory wins the max"})
    overhead_s: float = field(metadata={"help": "launch/host overhead seconds"})
    by_category_s: Mapping[str, float] = field(metadata={"help": "inclusive seconds per operator category"})


@frozen(kw_only=True)
class TimedTree:
    """Every node's :class:`NodeTime`, the total (sum over roots) and seconds per stage."""

    nodes: Mapping[str, NodeTime]
    total_s: float
    stage_s: Mapping[str, float] = field(metadata={"help": "seconds per stage of the nodes' own ops"})

    def share(self, node_id: str) -> float:
        """Fraction of the total time spent in ``node_id`` (inclusive); 0 for a zero total."""
        return self.nodes[node_id].total_s / self.total_s if self.total_s > 0 else 0.0

    def top(self, n: int, *, exclude: Iterable[str] = (), leaves_only: bool = False) -> list[tuple[str, float]]:
        """The ``n`` slowest nodes as (id, inclusive seconds), ties by id; ``exclude`` ids are skipped.

        ``leaves_only`` ranks by own time instead, so a parent does not hide its children.
        """
        skip = set(exclude)
        key = "own_s" if leaves_only else "total_s"
        ranked = sorted(
            ((nid, getattr(t, key)) for nid, t in self.nodes.items() if nid not in skip),
            key=lambda item: (-item[1], item[0]),
        )
        return ranked[: max(n, 0)]


def _own_node_time(costs: Mapping[str, Cost], rates: Rates, stage: str) -> NodeTime:
    by_cat: dict[str, float] = {}
    compute = memory = overhead = 0.0
    for cat, cost in costs.items():
        g = group_time(cost, cat, rates, stage=stage)
        by_cat[cat] = g.total_s
        overhead += g.overhead_s
        if g.bound == "compute":
            compute += g.compute_s
        else:
            memory += g.memory_s
    own = compute + memory + overhead
    return NodeTime(
        total_s=own,
        own_s=own,
        compute_bound_s=compute,
        memory_bound_s=memory,
        overhead_s=overhead,
        by_category_s=by_cat,
    )


def _plus(a: NodeTime, b: NodeTime) -> NodeTime:
    cats = dict(a.by_category_s)
    for cat, sec in b.by_category_s.items():
        cats[cat] = cats.get(cat, 0.0) + sec
    return NodeTime(
        total_s=a.total_s + b.total_s,
        own_s=a.own_s,
        compute_bound_s=a.compute_bound_s + b.compute_bound_s,
        memory_bound_s=a.memory_bound_s + b.memory_bound_s,
        overhead_s=a.overhead_s + b.overhead_s,
        by_category_s=cats,
    )


@frozen(kw_only=True)
class _Sides:
    """Inclusive device and host seconds of a node (overlap mode), per category and by what bounds the device."""

    device: Mapping[str, float]
    host: Mapping[str, float]
    compute_bound_s: float
    memory_bound_s: float

    def plus(self, other: _Sides) -> _Sides:
        return _Sides(
            device=_add(self.device, other.device),
            host=_add(self.host, other.host),
            compute_bound_s=self.compute_bound_s + other.compute_bound_s,
            memory_bound_s=self.memory_bound_s + other.memory_bound_s,
        )

    def node_time(self, *, own_s: float) -> NodeTime:
        """``total = max(device, host)``; categories share it by their own ``max(device_c, host_c)``."""
        total = max(sum(self.device.values()), sum(self.host.values()))
        return _node_time(self, total_s=total, own_s=own_s)


def _add(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0.0) + value
    return out


def _node_time(sides: _Sides, *, total_s: float, own_s: float) -> NodeTime:
    weights = {c: max(sides.device.get(c, 0.0), sides.host.get(c, 0.0)) for c in sorted({*sides.device, *sides.host})}
    weight_sum = sum(weights.values())
    return NodeTime(
        total_s=total_s,
        own_s=own_s,
        compute_bound_s=sides.compute_bound_s,
        memory_bound_s=sides.memory_bound_s,
        overhead_s=max(0.0, total_s - sides.compute_bound_s - sides.memory_bound_s),
        by_category_s={c: total_s * w / weight_sum if weight_sum > 0 else 0.0 for c, w in weights.items()},
    )


def _own_sides(costs: Mapping[str, Cost], rates: Rates, stage: str) -> _Sides:
    device: dict[str, float] = {}
    host: dict[str, float] = {}
    compute = memory = 0.0
    t_d = rates.profile.device_kernel_s
    for cat, cost in costs.items():
        g = group_time(cost, cat, rates, stage=stage)
        device[cat] = max(g.compute_s, g.memory_s) + cost.kernels * t_d
        host[cat] = g.overhead_s
        if g.bound == "compute":
            compute += g.compute_s
        else:
            memory += g.memory_s
    return _Sides(device=device, host=host, compute_bound_s=compute, memory_bound_s=memory)


def time_tree(tree: CostTree, rates: Rates) -> TimedTree:
    """Time every node of ``tree`` on ``rates``: roofline on each node's own kernel groups, summed upward (or, with
    the profile's ``overlap``, the larger of device and host time per node; the root sums its stages)."""
    roots = tree.roots()
    if tree and not roots:
        raise UserError("cost tree has no root (every node is some node's child)")
    own = tree.exclusive_by_category()
    if rates.profile.overlap:
        return _time_tree_overlapped(tree, rates, own, roots)
    own_times = {nid: _own_node_time(costs, rates, stage_of(nid)) for nid, costs in own.items()}
    done = _inclusive(tree, own_times, _plus, roots)
    total = sum(done[r].total_s for r in roots)
    stage_s: dict[str, float] = {}
    for nid, t in own_times.items():
        stage = stage_of(nid)
        stage_s[stage] = stage_s.get(stage, 0.0) + t.own_s
    return TimedTree(nodes=done, total_s=total, stage_s=stage_s)


_T = TypeVar("_T")


def _inclusive(
    tree: CostTree, own: Mapping[str, _T], plus: Callable[[_T, _T], _T], roots: Iterable[str]
) -> dict[str, _T]:
    """Every node's own value plus its children's inclusive values (depth first from the roots; a cycle is a
    :class:`UserError`)."""
    done: dict[str, _T] = {}

    def visit(nid: str, trail: frozenset[str]) -> _T:
        if nid in done:
            return done[nid]
        if nid in trail:
            raise UserError(f"cost tree has a cycle through {nid!r}; each node must have one parent")
        result = own[nid]
        for child in tree[nid].children:
            result = plus(result, visit(child, trail | {nid}))
        done[nid] = result
        return result

    for r in roots:
        visit(r, frozenset())
    for nid in tree:  # nodes unreachable from a root can only sit on a cycle
        visit(nid, frozenset())
    return done


def _time_tree_overlapped(
    tree: CostTree, rates: Rates, own: Mapping[str, Mapping[str, Cost]], roots: Iterable[str]
) -> TimedTree:
    own_sides = {nid: _own_sides(costs, rates, stage_of(nid)) for nid, costs in own.items()}
    sides = _inclusive(tree, own_sides, _Sides.plus, roots)
    done = {nid: side.node_time(own_s=own_sides[nid].node_time(own_s=0.0).total_s) for nid, side in sides.items()}
    stage_sides: dict[str, _Sides] = {}
    for nid, side in own_sides.items():
        stage = stage_of(nid)
        stage_sides[stage] = stage_sides[stage].plus(side) if stage in stage_sides else side
    stage_s = {stage: side.node_time(own_s=0.0).total_s for stage, side in stage_sides.items()}
    total = sum(stage_s.values())  # stages run one after another: the max is taken per stage, then summed
    if ROOT_ID in done:
        done[ROOT_ID] = _node_time(sides[ROOT_ID], total_s=total, own_s=done[ROOT_ID].own_s)
    return TimedTree(nodes=done, total_s=total, stage_s=stage_s)
