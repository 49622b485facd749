"""Time and memory on a named device (torch-free): roofline per kernel group, stages, throughput, sweeps.

Inputs are cost trees (:mod:`llm_perf_opt.perf.tree`): node id -> children and inclusive
:class:`~llm_perf_opt.core.Cost` per operator category, from the tracer or the analytic model.
"""

from llm_perf_opt.perf.compiled import CompiledTree
from llm_perf_opt.perf.efficiency import (
    CATEGORIES,
    DEFAULT_CATEGORY_EFFICIENCY,
    DEFAULT_MEMORY_EFFICIENCY,
    EFFICIENCY_BASIS,
    EXECUTION_MODES,
    KERNEL_OVERHEAD_S,
    DeviceProfile,
    default_profile,
    load_device_profile,
)
from llm_perf_opt.perf.memory import (
    CapacityCheck,
    MemoryFootprint,
    capacity_check,
    final_cache_tokens,
    footprint_at_dtype,
    kv_bytes_per_token,
    kv_bytes_per_token_for,
    kv_cache_bytes,
    peak_activation_bytes,
    weight_bytes,
)
from llm_perf_opt.perf.roofline import GroupTime, NodeTime, Rates, TimedTree, group_time, roofline_time_s, time_tree
from llm_perf_opt.perf.stages import StageTimes
from llm_perf_opt.perf.throughput import ExpectedCoverageRouting, Throughput, moe_expert_weight_bytes, throughput

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORY_EFFICIENCY",
    "DEFAULT_MEMORY_EFFICIENCY",
    "EFFICIENCY_BASIS",
    "EXECUTION_MODES",
    "KERNEL_OVERHEAD_S",
    "CapacityCheck",
    "CompiledTree",
    "DeviceProfile",
    "ExpectedCoverageRouting",
    "GroupTime",
    "MemoryFootprint",
    "NodeTime",
    "Rates",
    "StageTimes",
    "Throughput",
    "TimedTree",
    "capacity_check",
    "default_profile",
    "final_cache_tokens",
    "footprint_at_dtype",
    "group_time",
    "kv_bytes_per_token",
    "kv_bytes_per_token_for",
    "kv_cache_bytes",
    "load_device_profile",
    "moe_expert_weight_bytes",
    "peak_activation_bytes",
    "roofline_time_s",
    "throughput",
    "time_tree",
    "weight_bytes",
]
