"""Trace the distinct shapes of many measurement files once each, spread over the machine's cores (torch).

``validation-doc`` and ``calibrate`` need one trace per distinct (model, decoder attention, dtype, workload shapes)
of their files (:func:`~llm_perf_opt.measure.predict.cost_job`, :func:`~llm_perf_opt.measure.predict.memory_job`);
the traces are independent, each a second or two of one core.  A :class:`TracePool` runs the ones the trace cache
does not hold yet over up to :data:`MAX_PROCESSES` processes: this one and children forked from it after torch is
imported (a child starts with the imports done).  Jobs sharing a meta tree form one group (the tree is built once),
the costliest groups first, each process taking the next group when it is free.  A child hands its traces back
through the trace cache on disk; this process keeps its own in memory.  The jobs needed ``now`` (the cost trees)
come first; :meth:`TracePool.start` returns when they are done, so this process fits profiles while the children
trace the jobs needed ``later`` (the measured-dtype traces of the memory page), and :meth:`TracePool.finish` waits
for those.

Nothing about the outputs depends on the split: the callers read every trace in their own order, as without it,
from this process's memory or the cache.  A job that failed in any process (or a child that died) is simply not
there, so the caller traces it again and fails with the same error as a serial run.  Without a writable trace
cache, or with one core, this process traces every job itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.sharedctypes import Synchronized

from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.predict import TraceJob, cost_job, job_cached, memory_job, run_job
from llm_perf_opt.measure.record import Measurement
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import TraceCache

__all__ = [
    "MAX_PROCESSES",
    "PROCESSES_ENV",
    "TracePool",
    "jobs_of",
    "pending_groups",
    "processes_for",
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
    way to hand their traces back) or where processes cannot fork."""
    wanted = os.environ.get(PROCESSES_ENV, "")
    if wanted and not (wanted.isdigit() and int(wanted) > 0):
        raise UserError(f"{PROCESSES_ENV}={wanted!r} is not a positive whole number; set one (1: no workers) or unset")
    cores = int(wanted) if wanted else _cores()
    count = min(cores, len(groups), MAX_PROCESSES)
    forks = "fork" in multiprocessing.get_all_start_methods()
    return count if count > 1 and forks and _cache_writable() else 1


def _cores() -> int:
    """The cores this process may run on (all of the machine's where the system cannot say)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


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
    """Trace the ``jobs`` the cache lacks (:class:`TracePool`, then wait for all); returns the processes used."""
    with TracePool.start(jobs, progress=progress) as pool:
        pool.finish()
    return pool.processes


class TracePool:
    """Processes tracing groups of jobs (see the module doc): :meth:`start` returns once the groups needed ``now``
    are traced, while children may still trace those needed ``later``; :meth:`finish` helps with what is left and
    waits for the children.  As a context manager it always ends them (at once on an error)."""

    def __init__(self, groups: Sequence[Sequence[TraceJob]], *, first: int, processes: int) -> None:
        self.groups, self.first, self.processes = groups, first, processes
        context = multiprocessing.get_context("fork")
        self.taken: Synchronized[int] = context.Value("i", 0)
        self.done: Synchronized[int] = context.Value("i", 0)  # groups[:first] finished (traced or failed)
        self.children = [context.Process(target=self._child, daemon=True) for _ in range(processes - 1)]

    @classmethod
    def start(
        cls,
        now: Iterable[TraceJob],
        *,
        later: Iterable[TraceJob] = (),
        progress: Callable[[str], None] | None = None,
    ) -> TracePool:
        """Trace the ``now`` jobs the cache lacks, over the processes, and return when they are done; children
        go on with the ``later`` ones."""
        first = pending_groups(now)
        held = {job for group in first for job in group}
        groups = first + pending_groups(job for job in later if job not in held)
        pool = cls(groups, first=len(first), processes=processes_for(groups))
        if progress is not None and groups:
            shapes = sum(len(g) for g in groups)
            progress(f"tracing {shapes} distinct shape(s) over {pool.processes} process(es)")
        with contextlib.ExitStack() as on_error:
            on_error.push(pool.__exit__)  # an error (Ctrl-C) while tracing ends the children
            if pool.children:
                _import_lazy_parts()
                for child in pool.children:
                    child.start()
            pool._work(until=pool.first)
            pool._wait_first()
            on_error.pop_all()
        return pool

    def finish(self) -> None:
        """Trace the groups no process has taken yet, then wait for the children."""
        self._work(until=len(self.groups))
        for child in self.children:
            child.join()

    def __enter__(self) -> TracePool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        for child in self.children:
            if child.pid is None:
                continue  # never started
            if kind is not None and child.is_alive():
                child.terminate()  # an error ends the command: nothing waits for these traces
            child.join()

    def _child(self) -> None:
        with contextlib.suppress(Exception):  # the parent traces what is missing again and reports its error
            self._work(until=len(self.groups))

    def _work(self, *, until: int) -> None:
        """Take the next untaken group below ``until`` and trace its jobs, until none is left; a failing job is left
        to the caller."""
        while True:
            with self.taken.get_lock():
                index = self.taken.value
                if index >= until:
                    return
                self.taken.value = index + 1
            for job in self.groups[index]:
                with contextlib.suppress(Exception):
                    run_job(job)
            if index < self.first:
                with self.done.get_lock():
                    self.done.value += 1

    def _wait_first(self) -> None:
        """Until every group needed now is finished (or no child is left to finish one)."""
        while self.done.value < self.first and any(child.is_alive() for child in self.children):
            time.sleep(0.01)


def _import_lazy_parts() -> None:
    """Import before forking what the first meta kernel's ``torch._check`` imports on first use (torch's symbolic
    shapes and sympy: about 0.5 s), so no child imports it again."""
    # lazy: torch internals, only when tracing runs ahead
    import torch.fx.experimental.symbolic_shapes  # noqa: F401
