"""Trace once per shape: a content-addressed cache of trace results on disk (torch-free).

* :mod:`~llm_perf_opt.tracecache.key`: the key - a sha256 over everything that decides a trace (model source and
  the hash of the code that builds and traces it, config, workload shapes, attention, routing, tracer version).
* :mod:`~llm_perf_opt.tracecache.store`: :class:`TraceCache`, one JSON file per key under
  ``$LLM_PERF_OPT_CACHE_DIR`` (default: the user's cache directory), written atomically; an unreadable entry is
  dropped with a :class:`TraceCacheWarning` and rebuilt.

The application layer (``llm_perf_opt.analysis``) computes the key, asks the cache, and traces only on a miss.
"""

from llm_perf_opt.tracecache.key import TRACED_CODE, TRACER_VERSION, code_hash, trace_key, trace_key_parts
from llm_perf_opt.tracecache.store import (
    CACHE_DIR_ENV,
    CachedTrace,
    CacheInfo,
    TraceCache,
    TraceCacheWarning,
    batch_parts,
    default_cache_dir,
    usable_cache,
)

__all__ = [
    "CACHE_DIR_ENV",
    "TRACED_CODE",
    "TRACER_VERSION",
    "CacheInfo",
    "CachedTrace",
    "TraceCache",
    "TraceCacheWarning",
    "batch_parts",
    "code_hash",
    "default_cache_dir",
    "trace_key",
    "trace_key_parts",
    "usable_cache",
]
