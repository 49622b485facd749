"""Keep a batch basis of a workload's shapes in the background, so the first batch change is derived too.

The trace cache derives another batch of traced shapes from a batch basis (three more language traces; see
:mod:`llm_perf_opt.analysis.trace_step`).  Built in the foreground, the basis would cost every cold run those
traces, or the first batch change all of them.  Instead, when ``analyze`` traces shapes the cache has never seen,
:func:`prepare_batch_basis_later` starts one background process (``python -m llm_perf_opt.analysis.prepare``, its
own session, lowered priority, no output).  It waits until the command that started it has exited (so the command
is not slowed down), then traces the shapes at :data:`~llm_perf_opt.tracer.batch_fit.EXTRAPOLATE_FROM` rows (or the
workload's batch, when larger) with a basis and stores both in the same cache
(:func:`~llm_perf_opt.analysis.trace_step.build_batch_basis`), then traces :data:`PREPARED_BATCHES` (below the
basis's range).  Once it is done (about ten seconds after a cold run on a 2-core machine), a batch of those shapes
is a cache hit (8, 4, 2) or derived (every batch in the basis's range) in under a second.

Only built-in DeepSeek-OCR v1 sources keep a basis (the tracer replays only their modules), so only they start one.
``LLM_PERF_OPT_PREPARE=0`` (:data:`PREPARE_ENV`) turns it off; ``--no-cache`` never starts one.  Writes are the
cache's own (atomic): a process that is killed leaves nothing half-written, and a batch change made before it is
done traces as it would without it.  The process writes nothing else and says nothing; it is started at most once
per shapes (the cache's note that the shapes were seen stops the next run from starting another).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from llm_perf_opt.analysis.trace_step import build_batch_basis, traced
from llm_perf_opt.contracts.converter import converter
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import CACHE_DIR_ENV, TraceCache
from llm_perf_opt.workloads import RoutingModel, Workload

__all__ = [
    "NICENESS",
    "PREPARED_BATCHES",
    "PREPARE_ENV",
    "WAIT_LIMIT_S",
    "main",
    "prepare_batch_basis_later",
    "prepare_request",
]

PREPARE_ENV = "LLM_PERF_OPT_PREPARE"
"""``0`` keeps ``analyze`` from starting the background basis process (any other value, or unset: it may)."""

NICENESS = 10
"""The background process lowers its priority by this much, so the commands a person runs next come first."""

PREPARED_BATCHES = (4, 2)
"""Batches below the basis's range that people try first, traced (and kept) after the basis."""

WAIT_LIMIT_S = 600.0
"""The background process gives up when the command that started it is still running after this long."""


def prepare_request(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    after_pid: int | None = None,
) -> dict[str, Any] | None:
    """What the background process needs (JSON-ready; it starts tracing once process ``after_pid`` has exited), or
    None when no basis is kept for ``source`` or :data:`PREPARE_ENV` is ``0``."""
    if os.environ.get(PREPARE_ENV) == "0" or getattr(source, "kind", None) != "builtin-v1":
        return None
    return {
        "model": source.name,
        "workload": converter.unstructure(workload),
        "attention": attention,
        "routing": converter.unstructure(routing),
        "cache": str(cache.root),
        "after_pid": after_pid,
    }


def prepare_batch_basis_later(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    after_this_process: bool = True,
) -> subprocess.Popen[bytes] | None:
    """Start the background process keeping ``workload``'s batch basis in ``cache`` (module docstring); returns it,
    or None when none is started.  With ``after_this_process`` (a command line's process) it traces only once this
    process has exited, so it never slows the command down."""
    after = os.getpid() if after_this_process else None
    request = prepare_request(source, workload, attention=attention, routing=routing, cache=cache, after_pid=after)
    if request is None:
        return None
    env = {**os.environ, PREPARE_ENV: "0", CACHE_DIR_ENV: str(cache.root)}
    try:
        return subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps(request)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hang-up once analyze has returned
            env=env,
        )
    except OSError:
        return None  # the basis is an optimisation: without it the first batch change traces


def main(argv: Sequence[str] | None = None, *, niceness: int = NICENESS) -> int:
    """``python -m llm_perf_opt.analysis.prepare REQUEST``: once the request's ``after_pid`` has exited, build and
    store the basis :func:`prepare_request` describes, then trace :data:`PREPARED_BATCHES`, at ``niceness`` lower
    priority; exit 0 when a basis is kept, 1 when none is (the shapes do not allow one), 2 when the process it waited
    for ran past :data:`WAIT_LIMIT_S`."""
    (text,) = sys.argv[1:] if argv is None else argv
    request = json.loads(text)
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on some systems: run at normal priority
        os.nice(niceness)
    if request.get("after_pid") is not None and not _exited(int(request["after_pid"]), limit_s=WAIT_LIMIT_S):
        return 2
    source = resolve_model_source(request["model"])
    workload = converter.structure(request["workload"], Workload)
    shapes: dict[str, Any] = {
        "attention": request["attention"],
        "routing": converter.structure(request["routing"], RoutingModel),
    }
    cache = TraceCache(request["cache"])
    kept = build_batch_basis(source, workload, cache=cache, **shapes)
    for batch in PREPARED_BATCHES:
        if batch != workload.batch_size:
            traced(source, attrs.evolve(workload, batch_size=batch), cache=cache, **shapes)
    return 0 if kept else 1


def _exited(pid: int, *, limit_s: float) -> bool:
    """Wait until process ``pid`` has exited; False when it still runs after ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, or its number now belongs to another user's process: keep waiting up to the limit
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
