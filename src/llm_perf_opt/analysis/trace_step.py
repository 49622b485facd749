"""The trace step of an analysis, served from the trace cache when the same shapes were traced before.

The key (:func:`~llm_perf_opt.tracecache.trace_key_parts`) holds everything that decides a trace: the model source's
name and kind, a hash of the code that builds and traces it, the config, the workload's shapes, the attention kernel
and the routing model; for remote code also its snapshot fingerprint and the installed transformers.  Device, dtype
and time profile are not in it: they only change the timing of an unchanged trace.  On a hit nothing imports torch.
"""

from __future__ import annotations

from typing import Any, Literal

from llm_perf_opt.analysis.model_source import source_provenance
from llm_perf_opt.sources.upstream.compat import installed_transformers
from llm_perf_opt.tracecache import TraceCache, trace_key_parts
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import RoutingModel

__all__ = ["TraceOutcome", "analysis_key_parts", "traced"]

TraceOutcome = tuple[TraceResult, dict[str, Any] | None, bool]
"""(trace, the source's provenance of the run or None, whether it came from the cache)."""


def analysis_key_parts(source: Any, workload: Any, *, attention: str, routing: RoutingModel) -> dict[str, Any]:
    """The cache key parts of the analysis trace of ``workload`` on ``source``."""
    extra = None
    if getattr(source, "kind", "builtin-v1") != "builtin-v1":
        snapshot = getattr(source, "snapshot", None)
        extra = {"fingerprint": getattr(snapshot, "fingerprint", None), "transformers": installed_transformers()}
    return trace_key_parts(source, workload, attention=attention, routing=routing, extra=extra)


def traced(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache | None,
) -> TraceOutcome:
    """The trace of ``workload`` on ``source``: from ``cache`` when it holds the key, else traced (and stored)."""

    def trace() -> tuple[TraceResult, dict[str, Any] | None]:
        # lazy: tracing needs torch (seconds to import); a cache hit never gets here
        from llm_perf_opt.tracer.trace import trace_with_driver

        result, driver = trace_with_driver(source, workload, attention=attention, routing=routing)
        return result, source_provenance(source, driver)

    if cache is None:
        return (*trace(), False)
    parts = analysis_key_parts(source, workload, attention=attention, routing=routing)
    return cache.get_or_trace(parts, trace)
