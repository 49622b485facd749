"""Trace the distinct shapes of many measurement files once each, spread over the machine's cores (torch).

``validation-doc`` and ``calibrate`` need one trace per distinct (model, decoder attention, dtype, workload shapes)
of their files (:func:`~llm_perf_opt.measure.predict.cost_job`, :func:`~llm_perf_opt.measure.predict.memory_job`);
the traces are independent, each a second or two of one core.  :func:`trace_ahead` runs the ones the trace cache
does not hold yet over up to :data:`MAX_PROCESSES` processes: this one and children forked from it after torch is
imported (a child starts with the imports done and every tree this process built).  Jobs sharing a meta tree go to
one process (the tree is built once), the costliest groups first, each process taking the next group when it is
free.  A child hands its traces back through the trace cache on disk; this process keeps its own in memory.

Nothing about the outputs depends on the split: afterwards the callers read every trace in their own order, as
without it, from this process's memory or the cache.  A job that failed in any process (or a child that died) is
simply not there, so the caller traces it again and fails with the same error as a serial run.  Without a
writable trace cache, or with one core, nothing runs ahead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.sharedctypes import Synchronized

from llm_perf_opt.measure.predict import TraceJob, cost_job, job_cached, memory_job, run_job
from llm_perf_opt.measure.record import Measurement
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import TraceCache

__all__ = [
    "MAX_PROCESSES",
    "PROCESSES_ENV",
    "jobs_of",
    "pending_groups",
    "processes_for",
    "trace_ahead",
    "trace_jobs_ahead",
]

MAX_PROCESSES = 4
"""At most this many processes trace at once (each holds torch and a meta model: about 300 MB)."""

PROCESSES_ENV = "LLM_PERF_OPT_TRACE_PROCESSES"
"""Overrides the number of processes (``1``: trace in this process only, as the callers go)."""


def pending_groups(jobs: Iterable[TraceJob]) -> list[list[TraceJob]]:
    """The distinct ``jobs`` the trace cache does not hold, grouped by meta tree (model, attention, dtype), the
    costliest group first (ties: first seen first)."""
    groups: dict[tuple[str, str, str], list[TraceJob]] = {}
    for job in dict.fromkeys(jobs):
        if not job_cached(job):
            groups.setdefault(job[:3], []).append(job)
    order = sorted(groups.values(), key=lambda g: -_weight(g[0][0]) * (len(g) + 1))  # + 1: building the tree
    return order


def _weight(model: str) -> int:
    """A trace's relative cost: decoder layers times (routed experts + 1), the ops a pass records."""
    config = resolve_model_source(model).config
    return getattr(config, "num_hidden_layers", 1) * (getattr(config, "n_routed_experts", 0) + 1)


def processes_for(groups: Sequence[Sequence[TraceJob]]) -> int:
    """How many processes trace ``groups``: :data:`PROCESSES_ENV` when set, else the cores this process may use,
    never more than the groups or :data:`MAX_PROCESSES`; 1 without a writable trace cache (children would have no
    way to hand their traces back)."""
    wanted = os.environ.get(PROCESSES_ENV, "")
    cores = int(wanted) if wanted.isdigit() and int(wanted) > 0 else len(os.sched_getaffinity(0))
    count = min(cores, len(groups), MAX_PROCESSES)
    return count if count > 1 and _cache_writable() else 1


def _cache_writable() -> bool:
    folder = TraceCache().folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def jobs_of(measurements: Iterable[Measurement], *, memory: Iterable[Measurement] = ()) -> list[TraceJob]:
    """The cost-tree trace of every measurement and the measured-dtype trace of every one in ``memory``; a
    measurement whose job cannot be formed is left out (its caller reports why, in its turn)."""
    out = []
    for make, group in ((cost_job, measurements), (memory_job, memory)):
        for m in group:
            with contextlib.suppress(Exception):
                out.append(make(m))
    return out


def trace_jobs_ahead(jobs: Iterable[TraceJob], *, progress: Callable[[str], None] | None = None) -> int:
    """:func:`trace_ahead` of the ``jobs`` the cache lacks, announced on ``progress`` (nothing when all are cached);
    returns the number of processes used."""
    groups = pending_groups(jobs)
    if not groups:
        return 1
    if progress is not None:
        shapes = sum(len(g) for g in groups)
        progress(f"tracing {shapes} distinct shape(s) over {processes_for(groups)} process(es)")
    return trace_ahead(groups)


def trace_ahead(groups: Sequence[Sequence[TraceJob]]) -> int:
    """Trace ``groups`` (:func:`pending_groups`) over :func:`processes_for` processes (see the module doc); returns
    the number of processes used (1: none ran ahead, the callers trace as they go)."""
    count = processes_for(groups)
    if count < 2:
        return 1
    _import_lazy_parts()
    context = multiprocessing.get_context("fork")
    taken: Synchronized[int] = context.Value("i", 0)
    children = [context.Process(target=_child, args=(groups, taken), daemon=True) for _ in range(count - 1)]
    try:
        for child in children:
            child.start()
        _work(groups, taken)
    finally:
        for child in children:
            child.join()
    return count


def _child(groups: Sequence[Sequence[TraceJob]], taken: Synchronized[int]) -> None:
    with contextlib.suppress(Exception):  # the parent traces what is missing again and reports its error
        _work(groups, taken)


def _work(groups: Sequence[Sequence[TraceJob]], taken: Synchronized[int]) -> None:
    """Take the next untaken group and trace its jobs, until none is left; a failing job is left to the caller."""
    while True:
        with taken.get_lock():
            index = taken.value
            taken.value = index + 1
        if index >= len(groups):
            return
        for job in groups[index]:
            with contextlib.suppress(Exception):
                run_job(job)


def _import_lazy_parts() -> None:
    """Import before forking what the first meta kernel's ``torch._check`` imports on first use (torch's symbolic
    shapes and sympy: about 0.5 s), so no child imports it again."""
    # lazy: torch internals, only when tracing runs ahead
    import torch.fx.experimental.symbolic_shapes  # noqa: F401
