"""Torch-free OCR workloads: resolution modes, the crop rule, token counts, resolved workloads, presets, routing.

See docs/architecture.md ("Workloads") and the model-facts §3.1-§3.6.
"""

from llm_perf_opt.workloads.crops import crop_grid
from llm_perf_opt.workloads.modes import MODES, ResolutionMode, get_mode
from llm_perf_opt.workloads.presets import (
    DEFAULT_PRESET_ID,
    PRESETS,
    get_preset,
    preset_workload,
    profile_from_workload,
)
from llm_perf_opt.workloads.routing import ROUTING_KINDS, RoutingModel, expected_distinct_experts
from llm_perf_opt.workloads.tokens import image_tokens, prefill_seq_len
from llm_perf_opt.workloads.workload import MAX_PAGE_SIDE_PX, ProfileLike, Workload

__all__ = [
    "DEFAULT_PRESET_ID",
    "MAX_PAGE_SIDE_PX",
    "MODES",
    "PRESETS",
    "ROUTING_KINDS",
    "ProfileLike",
    "ResolutionMode",
    "RoutingModel",
    "Workload",
    "crop_grid",
    "expected_distinct_experts",
    "get_mode",
    "get_preset",
    "image_tokens",
    "prefill_seq_len",
    "preset_workload",
    "profile_from_workload",
]
