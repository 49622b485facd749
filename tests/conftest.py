"""Suite-wide fixtures: each test gets its own empty trace cache, never the user's cache directory.

torch is imported up front, so a command run in the suite's own process (``main([...])``) never defers torch's
Python meta kernels for the tests after it (:mod:`llm_perf_opt.tracer.lazy_metas` defers only where torch is not
imported yet); the tests of the deferral run their own processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch  # noqa: F401  (before any test: see the module docstring)

from llm_perf_opt.analysis.prepare import PREPARE_ENV
from llm_perf_opt.tracecache import CACHE_DIR_ENV


@pytest.fixture(autouse=True)
def _private_trace_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$LLM_PERF_OPT_CACHE_DIR`` points at a fresh folder for each test (subprocesses inherit it), so no test
    reads a trace another test cached, and none writes into the home directory."""
    folder = tmp_path_factory.mktemp("trace-cache")
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def _no_background_basis(monkeypatch: pytest.MonkeyPatch) -> None:
    """``analyze`` starts no background batch-basis process (tests of it turn it back on): a suite of cold runs would
    leave one busy process per new workload behind it."""
    monkeypatch.setenv(PREPARE_ENV, "0")


@pytest.fixture(autouse=True)
def _collector_thawed() -> Iterator[None]:
    """A test that forks the background basis process as a command line does leaves this process's objects frozen
    out of the collector's view (a command exits next): thawed after it, so the next test in this worker starts as
    a fresh process does (the tests of the freeze count it)."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
