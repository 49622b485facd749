"""A cost tree flattened for fast re-timing: one row per (node, category) kernel group with its stage.

:func:`~llm_perf_opt.perf.roofline.time_tree` keeps per-node detail for reports; a what-if sweep only needs stage
totals for many (device, dtype) pairs of the same counts. :class:`CompiledTree` does the tree walk once and then
times all groups with the same roofline formula - the stage totals equal ``time_tree(...).stage_s`` (to float
rounding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import field, frozen

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.core.tree import STAGES, CostTree, stage_of
from llm_perf_opt.perf.efficiency import CATEGORIES
from llm_perf_opt.perf.roofline import Rates

__all__ = ["CompiledTree", "WorkloadCosts"]

_Row = tuple[int, int, float, float, float, float]  # stage index, category index, F_mm, F_vec, bytes, kernels


@frozen(kw_only=True)
class CompiledTree:
    """Kernel groups as flat rows ``(stage, category, F_mm, F_vec, B, K)``; build with :meth:`from_tree`."""

    rows: tuple[_Row, ...]

    @classmethod
    def from_tree(cls, tree: CostTree) -> CompiledTree:
        """Flatten ``tree``: each node's own cost per category becomes one row (zero costs dropped)."""
        rows: list[_Row] = []
        for nid, costs in sorted(tree.exclusive_by_category().items()):
            stage = STAGES.index(stage_of(nid))
            for cat, cost in sorted(costs.items()):
                rows.append(
                    (
                        stage,
                        _category_index(cat),
                        float(cost.matmul_flops_executed),
                        float(cost.vector_flops),
                        float(cost.total_bytes),
                        float(cost.kernels),
                    )
                )
        return cls(rows=tuple(rows))

    @classmethod
    def from_inclusive_counters(
        cls, children: Mapping[str, Sequence[str]], inclusive: Mapping[str, Mapping[str, Counters]]
    ) -> CompiledTree:
        """Fast path for producers that keep running counters: ``inclusive[node][category]`` is a node's inclusive
        :class:`~llm_perf_opt.core.counts.Counters` in a category (as ``AnalyticTree.counters`` holds them).

        Same rows as :meth:`from_tree` on the equivalent tree, without building a ``Cost`` per node.
        """
        rows: list[_Row] = []
        for nid in sorted(inclusive):
            stage = STAGES.index(stage_of(nid))
            kids = [inclusive[c] for c in children.get(nid, ())]
            for cat, mine in sorted(inclusive[nid].items()):
                parts = [kid[cat] for kid in kids if cat in kid]
                mm = mine.matmul_flops_executed - sum(p.matmul_flops_executed for p in parts)
                vec = mine.vector_flops - sum(p.vector_flops for p in parts)
                read = mine.bytes_read - sum(p.bytes_read for p in parts)
                written = mine.bytes_written - sum(p.bytes_written for p in parts)
                kernels = mine.kernels - sum(p.kernels for p in parts)
                own = (mm, vec, read, written, kernels)
                if any(v < 0 for v in own):
                    raise ValueError(f"node {nid!r} category {cat!r}: children's counters exceed the node's")
                if any(own):
                    rows.append(
                        (stage, _category_index(cat), float(mm), float(vec), float(read + written), float(kernels))
                    )
        return cls(rows=tuple(rows))

    def stage_seconds(self, rates: Rates) -> dict[str, float]:
        """Seconds per stage on ``rates``: ``sum over groups of max(compute, memory) + K*t_k``, or with the
        profile's ``overlap`` ``max(sum of max(compute, memory) + K*t_d, K*t_k)`` per stage."""
        profile = rates.profile
        inv_eff = [1.0 / profile.category_efficiency[c] for c in CATEGORIES]
        inv_mm = 1.0 / rates.matmul_peak_flops
        inv_vec = 1.0 / rates.vector_peak_flops
        per_byte = rates.bytes_scale / (rates.memory_bandwidth_bytes_per_s * profile.memory_efficiency)
        t_k = [profile.kernel_overhead(stage) for stage in STAGES]
        t_d = profile.device_kernel_s if profile.overlap else 0.0
        roof = [0.0] * len(STAGES)
        kernels_per_stage = [0.0] * len(STAGES)
        for stage, cat, f_mm, f_vec, nbytes, kernels in self.rows:
            compute = (f_mm * inv_mm + f_vec * inv_vec) * inv_eff[cat]
            memory = nbytes * per_byte
            roof[stage] += compute if compute >= memory else memory
            kernels_per_stage[stage] += kernels
        if profile.overlap:
            totals = [
                max(roof[i] + kernels_per_stage[i] * t_d, kernels_per_stage[i] * t_k[i]) for i in range(len(STAGES))
            ]
        else:
            totals = [roof[i] + kernels_per_stage[i] * t_k[i] for i in range(len(STAGES))]
        return {stage: totals[i] for i, stage in enumerate(STAGES)}


def _category_index(category: str) -> int:
    try:
        return CATEGORIES.index(category)
    except ValueError:
        raise ValueError(f"unknown operator category {category!r}; expected one of {', '.join(CATEGORIES)}") from None


@frozen(kw_only=True)
class WorkloadCosts:
    """What a sweep needs from a cost model for one workload (all counts in ``counted_dtype``, whole batch)."""

    compiled: CompiledTree = field(metadata={"help": "the workload's kernel groups (see CompiledTree.from_tree)"})
    weight_bytes: int = field(metadata={"help": "parameter bytes resident on the device"})
    kv_cache_bytes: int = field(metadata={"help": "KV cache at its final length (S+N-1 tokens), whole batch"})
    peak_activation_bytes: int = field(metadata={"help": "largest live activation set, whole batch"})
    counted_dtype: str = field(default="bf16", metadata={"help": "dtype the bytes were counted in"})

    @classmethod
    def from_tree(
        cls,
        tree: CostTree,
        *,
        weight_bytes: int,
        kv_cache_bytes: int,
        peak_activation_bytes: int,
        counted_dtype: str = "bf16",
    ) -> WorkloadCosts:
        """From a cost tree, for cost functions that build one."""
        return cls(
            compiled=CompiledTree.from_tree(tree),
            weight_bytes=weight_bytes,
            kv_cache_bytes=kv_cache_bytes,
            peak_activation_bytes=peak_activation_bytes,
            counted_dtype=counted_dtype,
        )
