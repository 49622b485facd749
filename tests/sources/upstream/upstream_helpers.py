"""Helpers shared by the upstream-source tests (imported by name; not a test module)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from llm_perf_opt.tracer.trace import trace_with_driver
from llm_perf_opt.workloads import Workload


def small_workload(max_new_tokens: int = 4) -> Workload:
    """Gundam 2x2 crops (S = 703), a few decode steps: every adapted spot runs, quickly."""
    return Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=max_new_tokens)


REQUIRES_TRANSFORMERS = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="loading remote code needs transformers: pip install 'llm-perf-opt[hf]' (scripts/test-transformers-compat)",
)


def trace_upstream(source: Any, workload: Any, *, model: Any = None) -> tuple[Any, Any]:
    """Trace ``workload`` on an upstream source (eager): ``(TraceResult, provenance with adapter use counts)``."""
    result, driver = trace_with_driver(source, workload, attention="eager", model=model)
    return result, source.provenance(driver)
