"""The trace step of an analysis, served from the trace cache when the same shapes were traced before.

The key (:func:`trace_key_parts`) holds everything that decides a trace: the model source's name and kind, a hash of
the code that builds and traces it (the ``sources``, ``tracer``, ``config``, ``workloads`` and ``core`` packages;
for remote code also its snapshot fingerprint and the installed transformers), the config, the workload's shapes,
the attention kernel and the routing model.  Device, dtype and time profile are not in it: they only change the
timing of an unchanged trace.  On a hit nothing imports torch.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from llm_perf_opt.contracts.converter import converter
from llm_perf_opt.sources.upstream.compat import installed_transformers
from llm_perf_opt.tracecache import CachedTrace, TraceCache, code_hash, trace_key
from llm_perf_opt.tracecache.store import FORMAT
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import RoutingModel

__all__ = ["TRACED_CODE", "TraceOutcome", "trace_key_parts", "traced"]

TRACED_CODE = ("sources", "tracer", "config", "workloads", "core")
"""Packages (under ``llm_perf_opt``) whose files decide what a trace returns."""

TraceOutcome = tuple[TraceResult, dict[str, Any] | None, bool]
"""(trace, the source's provenance of the run or None, whether it came from the cache)."""


def trace_key_parts(source: Any, workload: Any, *, attention: str, routing: RoutingModel) -> dict[str, Any]:
    """The parts of the cache key of tracing ``workload`` on ``source`` (JSON-able)."""
    shapes = converter.unstructure(workload)
    shapes.pop("profile_id", None)  # a preset's name does not change the trace
    kind = str(getattr(source, "kind", "builtin-v1"))
    parts: dict[str, Any] = {
        "source": source.name,
        "kind": kind,
        "code": code_hash(TRACED_CODE),
        "config": converter.unstructure(source.config),
        "workload": {"type": type(workload).__name__, **shapes},
        "attention": attention,
        "routing": converter.unstructure(routing),
    }
    if kind != "builtin-v1":
        snapshot = getattr(source, "snapshot", None)
        parts["remote"] = {
            "fingerprint": getattr(snapshot, "fingerprint", None),
            "transformers": installed_transformers(),
        }
    return parts


def traced(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache | None,
) -> TraceOutcome:
    """The trace of ``workload`` on ``source``: from ``cache`` when it holds the key, else traced (and stored)."""
    key = parts_text = ""
    if cache is not None:
        parts = trace_key_parts(source, workload, attention=attention, routing=routing)
        key = trace_key(parts)
        parts_text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        hit = cache.load(key)
        if hit is not None:
            return hit.trace, hit.provenance, True
    # lazy: tracing needs torch (seconds to import); a cache hit above never gets here
    from llm_perf_opt.tracer.trace import trace_with_driver

    trace, driver = trace_with_driver(source, workload, attention=attention, routing=routing)
    provenance_of = getattr(source, "provenance", None)
    provenance = provenance_of(driver).as_dict() if callable(provenance_of) else None
    if cache is not None:
        cache.store(CachedTrace(format=FORMAT, key=key, parts=parts_text, trace=trace, provenance=provenance))
    return trace, provenance, False
