"""The trace driver's process-wide settings: what a trace changes for its length only."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer import engine
from llm_perf_opt.tracer.trace import trace_workload


def test_the_collector_leaves_older_objects_alone_only_while_a_trace_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen: list[int] = []
    run_pass = engine._run_pass

    def counted(*args: Any, **kwargs: Any) -> Any:
        frozen.append(gc.get_freeze_count())
        return run_pass(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_pass", counted)
    assert gc.get_freeze_count() == 0
    trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
    assert frozen and min(frozen) > 0  # the model tree and every module imported before it: not walked meanwhile
    assert gc.get_freeze_count() == 0  # and collectable again afterwards


def test_objects_frozen_before_a_trace_stay_frozen() -> None:
    """The background basis process is forked with its parent's objects frozen: a trace must not thaw them."""
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), "dsocr-tiny-v1")
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()
