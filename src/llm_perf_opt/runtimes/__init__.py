"""Runtime kernel models (torch-free): how hf-eager, hf-flash, hf-cuda-graph, vLLM and SGLang run DeepSeek-OCR.

A runtime (:mod:`.catalog`) is data plus small rules: module class -> kernels it launches (:mod:`.kernel_map`),
launch and host costs, which iterations replay CUDA graphs.  :func:`runtime_iteration_timer` prices serving
iterations (:class:`~llm_perf_opt.perf.iteration.BatchComposition`); :func:`single_request_times` gives one
request's TTFT and TPOT.  Published measurements and the validation page: :mod:`.published`, :mod:`.validation`.
"""

from llm_perf_opt.runtimes.catalog import RUNTIMES, Runtime, get_runtime, runtime_ids
from llm_perf_opt.runtimes.kernel_map import UnitRule, fuse_tree
from llm_perf_opt.runtimes.timer import (
    RequestTimes,
    RuntimeIterationTimer,
    runtime_iteration_timer,
    single_request_times,
)

__all__ = [
    "RUNTIMES",
    "RequestTimes",
    "Runtime",
    "RuntimeIterationTimer",
    "UnitRule",
    "fuse_tree",
    "get_runtime",
    "runtime_ids",
    "runtime_iteration_timer",
    "single_request_times",
]
