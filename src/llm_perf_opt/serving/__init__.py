"""Serving simulator (torch-free): iteration-level continuous batching as vLLM V1 and SGLang schedule it, over a
runtime's per-iteration cost (:class:`~llm_perf_opt.perf.iteration.IterationTimer`), and capacity plans.

* :mod:`.requests` - request mixes (pages, text-only, length files, repetition loops)
* :mod:`.settings` - each runtime's scheduler and cache defaults, with their sources
* :mod:`.memory` - the KV pool a runtime builds on a device
* :mod:`.engine` - the scheduler loop; :mod:`.simulate` - metrics; :mod:`.session` - options to a ready run
* :mod:`.plan` - SLA-constrained capacity plans; :mod:`.bounds` - what bounds a decode step

docs/serving.md describes the model, the defaults and what is left out.
"""

from llm_perf_opt.serving.cache import CachedTimer
from llm_perf_opt.serving.engine import Load, SimulationRun
from llm_perf_opt.serving.memory import KvBudget, kv_budget
from llm_perf_opt.serving.plan import PlanResult, make_plan
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix, load_lengths
from llm_perf_opt.serving.settings import RUNTIMES, SchedulerSettings, default_settings
from llm_perf_opt.serving.simulate import SimulationResult, simulate

__all__ = [
    "RUNTIMES",
    "CachedTimer",
    "KvBudget",
    "LengthDistribution",
    "Load",
    "PlanResult",
    "RequestMix",
    "SchedulerSettings",
    "SimulationResult",
    "SimulationRun",
    "default_settings",
    "kv_budget",
    "load_lengths",
    "make_plan",
    "simulate",
]
