"""Build bookkeeping on the event loop: one job per report id, a bounded number running, results into the store.

All state changes happen on the event loop thread without an ``await`` between "is a job for this id active?" and
"register one", so concurrent identical requests share one build.  Disk work (job records, publishing) runs in
threads; the build itself runs in the worker process pool (:mod:`llm_perf_opt.service.worker`).

The store holds the durable state: a published report is finished; ``.jobs/<id>.json`` says queued, running or failed
(with the reason).  After a crash :meth:`ReportStore.recover` turns the records of interrupted builds into failures,
and a new POST of the same request builds again.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from attrs import define, field

from llm_perf_opt.contracts.vocab import AcceptedStatus
from llm_perf_opt.service.backend import BuildBackend
from llm_perf_opt.service.worker import BuildOutcome, new_pool, run_build, stop_pool
from llm_perf_opt.store import JobRecord, JobStatus, ReportStore

__all__ = ["BuildCounters", "BuildManager", "ServiceBusyError"]

log = logging.getLogger("llm_perf_opt.service")


def _log_warmup_failure(future: asyncio.Task[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("backend warm-up failed (builds will report the error): %s", future.exception())


class ServiceBusyError(Exception):
    """Too many builds are waiting; the client should retry later."""


@define(kw_only=True)
class BuildCounters:
    """Totals since the server started (for ``/health`` and tests)."""

    submitted: int = 0
    published: int = 0
    failed: int = 0


@define(kw_only=True)
class _Job:
    report_id: str
    options: Any
    request: dict[str, Any]
    replace: bool
    status: AcceptedStatus = "queued"
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    recorded: asyncio.Event = field(factory=asyncio.Event, repr=False)  # set once the store knows about the job


class BuildManager:
    """Runs builds for report ids, at most ``workers`` at a time and at most ``max_pending`` waiting."""

    def __init__(self, *, store: ReportStore, backend: BuildBackend, workers: int, max_pending: int) -> None:
        self.store = store
        self.backend = backend
        self.workers = workers
        self.max_pending = max_pending
        self.counters = BuildCounters()
        self._active: dict[str, _Job] = {}
        self._slots = asyncio.Semaphore(workers)
        self._pool: ProcessPoolExecutor | None = None
        self._warmup: asyncio.Task[None] | None = None

    async def start(self) -> list[str]:
        """Recover the store after an earlier crash and start the worker pool; returns ids marked failed."""
        failed = await asyncio.to_thread(self.store.recover)
        for report_id in failed:
            log.warning("build of %s was interrupted by an earlier stop; marked failed", report_id)
        self._pool = new_pool(self.workers, self.backend.prepare)
        if self.backend.prepare is not None:  # warm up in the background: the first request should not pay imports
            self._warmup = asyncio.create_task(asyncio.to_thread(self.backend.prepare))
            self._warmup.add_done_callback(_log_warmup_failure)
        return failed

    async def stop(self) -> None:
        """Mark unfinished builds failed, cancel them and stop the workers."""
        if self._warmup is not None:
            self._warmup.cancel()
        jobs = list(self._active.values())
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(job.task for job in jobs if job.task is not None), return_exceptions=True)
        for job in jobs:
            reason = "the server stopped before this build finished; POST the same request again to rebuild"
            await self._record(job, "failed", reason)
        if self._pool is not None:
            stop_pool(self._pool)
            self._pool = None

    def status(self, report_id: str) -> AcceptedStatus | None:
        """queued/running while this server builds ``report_id``; None otherwise."""
        job = self._active.get(report_id)
        return None if job is None else job.status

    def counts(self) -> dict[str, int]:
        """Builds queued and running now."""
        statuses = [job.status for job in self._active.values()]
        return {"queued": statuses.count("queued"), "running": statuses.count("running")}

    async def submit(self, report_id: str, options: Any, request: dict[str, Any], *, replace: bool) -> AcceptedStatus:
        """Start building ``report_id`` unless a build of it is already queued or running (then join that one).

        Returns once the store has a record of the build, so an accepted build is never forgotten by a crash:
        after a restart it is reported as interrupted (failed), not unknown.
        """
        job = self._active.get(report_id)
        if job is None:  # no await between this check and the registration: concurrent requests share one job
            if self.counts()["queued"] >= self.max_pending:
                raise ServiceBusyError(f"{self.max_pending} builds are already waiting")
            job = _Job(report_id=report_id, options=options, request=request, replace=replace)
            self._active[report_id] = job
            self.counters.submitted += 1
            job.task = asyncio.create_task(self._run(job), name=f"build {report_id}")
        await job.recorded.wait()
        return job.status

    async def _record(self, job: _Job, status: JobStatus, reason: str | None = None) -> None:
        record = JobRecord(report_id=job.report_id, status=status, reason=reason, request=job.request)
        await asyncio.to_thread(self.store.set_job, record)

    async def _run(self, job: _Job) -> None:
        try:
            try:
                await self._record(job, "queued")
            finally:
                job.recorded.set()
            async with self._slots:
                job.status = "running"
                await self._record(job, "running")
                outcome = await self._build(job)
            if outcome.files is not None:
                await asyncio.to_thread(self.store.publish, job.report_id, outcome.files, replace=job.replace)
                await asyncio.to_thread(self.store.clear_job, job.report_id)
                self.counters.published += 1
                log.info("published %s", job.report_id)
            else:
                await self._fail(job, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a disk problem: keep the traceback in the log, the reason in the store
            log.exception("build of %s failed", job.report_id)
            await self._fail(job, BuildOutcome(error=f"{type(exc).__name__}: {exc}"))
        finally:
            if self._active.get(job.report_id) is job:
                del self._active[job.report_id]

    async def _build(self, job: _Job) -> BuildOutcome:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the build manager is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, run_build, self.backend.build, job.options)
        except BrokenProcessPool:
            if self._pool is pool:  # the first job to notice replaces the pool; the others just fail
                stop_pool(pool)
                self._pool = new_pool(self.workers, self.backend.prepare)
            return BuildOutcome(error="the worker process building this report died (out of memory or killed)")

    async def _fail(self, job: _Job, outcome: BuildOutcome) -> None:
        if outcome.details:
            log.error("build of %s failed:\n%s", job.report_id, outcome.details)
        kind = "" if outcome.user else "internal error: "
        reason = f"build failed: {kind}{outcome.error}; POST the request with force_rebuild true to try again"
        self.counters.failed += 1
        await self._record(job, "failed", reason)
