"""The analytic model as the sweep's cost function.

:func:`workload_costs_from_analytic` turns :func:`llm_perf_opt.analytic.analytic_costs` into
:class:`~llm_perf_opt.perf.compiled.WorkloadCosts`: the kernel groups (flattened straight from the analytic model's
parent/child links and per-category inclusive counters, eager op-level bytes), the parameter bytes, the KV cache at
its final length and the activation peak.
"""

from __future__ import annotations

from typing import Literal

from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.hardware import BYTES_PER_ELEMENT
from llm_perf_opt.perf.compiled import CompiledTree, WorkloadCosts
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = ["workload_costs_from_analytic"]


def workload_costs_from_analytic(
    config: DeepseekOCRConfig,
    workload: Workload,
    *,
    attention: str,
    routing: RoutingModel,
    dtype: str = "bf16",
) -> WorkloadCosts:
    """The analytic model's counts for ``workload`` as sweep input (bytes counted at ``dtype``'s width)."""
    a = BYTES_PER_ELEMENT[dtype]
    kernel: Literal["flash", "eager"] = "eager" if attention == "eager" else "flash"  # SweepSpec accepts only these two
    tree = analytic_costs(config, workload, attention=kernel, routing=routing, act_bytes=a)
    return WorkloadCosts(
        compiled=CompiledTree.from_inclusive_counters(tree.children, tree.counters),
        weight_bytes=tree.weight_bytes["root"],
        kv_cache_bytes=tree.kv_cache_bytes.get("root", 0),
        peak_activation_bytes=tree.peak_activation_bytes.get("root", 0),
        counted_dtype=dtype,
    )
