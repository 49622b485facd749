"""Build bookkeeping on the event loop: one job per report id, a bounded number running, results into the store.

All state changes happen on the event loop thread without an ``await`` between "is a job for this id active?" and
"register one", so concurrent identical requests share one build.  Disk work (job records, locks, publishing) runs in
threads; the build itself runs in a :class:`~llm_perf_opt.service.worker.WorkerProcess`, one per slot, under the
server's time and memory limits (a build past them is failed and its worker replaced).

The store holds the durable state: a published report is finished; ``.jobs/<id>.json`` says queued, running or failed
(with the reason).  A POST is accepted only once that record is on disk (:class:`StoreUnavailableError` otherwise).
Several servers may share a store: a build holds the store's lock for its report id, so a second server waits and
then reuses the report the first one published.  After a crash :meth:`ReportStore.recover` turns the records of
interrupted builds into failures, and a new POST of the same request builds again.

Log lines are ``event=... report_id=...`` pairs (the server's log format adds the timestamp).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from attrs import define, field

from llm_perf_opt.contracts.vocab import AcceptedStatus
from llm_perf_opt.service.backend import BuildBackend
from llm_perf_opt.service.worker import BuildOutcome, WorkerProcess
from llm_perf_opt.store import JobRecord, JobStatus, ReportStore

__all__ = ["BuildCounters", "BuildLimits", "BuildManager", "ServiceBusyError", "StoreUnavailableError", "public_text"]

log = logging.getLogger("llm_perf_opt.service")

# an absolute file path, but not one of this API's own URL paths (which messages name on purpose)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?!analytic/|openapi\.yaml|health)(?:[\w.@+-]+/)*[\w.@+-]+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_MAX_PUBLIC_CHARS = 400


def public_text(message: str) -> str:
    """What of a message may reach a client: its first line, no absolute paths or memory addresses, at most
    400 characters (tracebacks, C++ frames and install paths stay in the server log)."""
    first = (message.strip().splitlines() or [""])[0]
    first = _ADDRESS.sub("0x…", _ABSOLUTE_PATH.sub("<path>", first))
    return first if len(first) <= _MAX_PUBLIC_CHARS else first[: _MAX_PUBLIC_CHARS - 1] + "…"


class ServiceBusyError(Exception):
    """Too many builds are waiting; the client should retry later."""


class StoreUnavailableError(Exception):
    """The store cannot record a job (read-only, full, gone): nothing was accepted."""


@define(kw_only=True)
class BuildCounters:
    """Totals since the server started (for ``/health`` and tests): builds accepted (a POST joining a build already
    queued or running adds none), published and failed."""

    submitted: int = 0
    published: int = 0
    failed: int = 0


@define(kw_only=True)
class BuildLimits:
    """Per-build bounds (``serve --build-timeout-s``, ``--build-memory-mb``) and record retention."""

    timeout_s: float = 600.0
    memory_mb: int = 8192
    failed_retention_s: float = 7 * 24 * 3600.0
    lock_poll_s: float = 0.2


@define(kw_only=True)
class _Job:
    report_id: str
    options: Any
    request: dict[str, Any]
    replace: bool
    accepted_at: float = field(factory=time.time)
    status: AcceptedStatus = "queued"
    stage: str = "queued"
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    recorded: asyncio.Event = field(factory=asyncio.Event, repr=False)  # set once the store knows about the job
    record_error: str | None = None


class BuildManager:
    """Runs builds for report ids, at most ``workers`` at a time and at most ``max_pending`` waiting."""

    def __init__(
        self,
        *,
        store: ReportStore,
        backend: BuildBackend,
        workers: int,
        max_pending: int,
        limits: BuildLimits | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.workers = workers
        self.max_pending = max_pending
        self.limits = limits or BuildLimits()
        self.counters = BuildCounters()
        self._active: dict[str, _Job] = {}
        self._waiting: list[str] = []  # queued job ids, first come first served
        self._idle: asyncio.Queue[WorkerProcess] = asyncio.Queue()
        self._all: set[WorkerProcess] = set()
        self._warmup: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> list[str]:
        """Recover the store after an earlier crash and start the workers; returns ids marked failed."""
        failed = await asyncio.to_thread(self.store.recover)
        for report_id in failed:
            log.warning("event=build_interrupted report_id=%s reason=earlier_stop", report_id)
        await asyncio.to_thread(self.store.prune_failed, self.limits.failed_retention_s)
        for _ in range(self.workers):
            self._idle.put_nowait(await asyncio.to_thread(self._new_worker))
        if self.backend.prepare is not None:  # warm up in the background: the first request should not pay imports
            self._warmup = asyncio.create_task(asyncio.to_thread(self.backend.prepare))
            self._warmup.add_done_callback(_log_warmup_failure)
        return failed

    def _new_worker(self) -> WorkerProcess:
        worker = WorkerProcess(prepare=self.backend.prepare, memory_mb=self.limits.memory_mb)
        self._all.add(worker)
        return worker

    async def stop(self) -> None:
        """Stop accepting, terminate the workers, and record unfinished builds as interrupted (failed)."""
        self._stopping = True
        if self._warmup is not None:
            self._warmup.cancel()
        jobs = list(self._active.values())
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
        workers = list(self._all)
        self._all.clear()
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))
        await asyncio.gather(*(job.task for job in jobs if job.task is not None), return_exceptions=True)
        reason = "interrupted: the server stopped before this build finished; POST the same request again to rebuild"
        for job in jobs:
            with contextlib.suppress(OSError):
                await self._record(job, "failed", reason)
            log.warning("event=build_interrupted report_id=%s reason=server_stop", job.report_id)

    def status(self, report_id: str) -> AcceptedStatus | None:
        """queued/running while this server builds ``report_id``; None otherwise."""
        job = self._active.get(report_id)
        return None if job is None else job.status

    def progress(self, report_id: str) -> tuple[str, int | None] | None:
        """``(stage, queue position)`` of an active build (position 1 = next to start; None once started)."""
        job = self._active.get(report_id)
        if job is None:
            return None
        position = self._waiting.index(report_id) + 1 if report_id in self._waiting else None
        return job.stage, position

    def counts(self) -> dict[str, int]:
        """Builds queued and running now."""
        statuses = [job.status for job in self._active.values()]
        return {"queued": statuses.count("queued"), "running": statuses.count("running")}

    def active(self) -> dict[str, AcceptedStatus]:
        """Report id -> status of every build this server runs or queues."""
        return {report_id: job.status for report_id, job in self._active.items()}

    async def submit(self, report_id: str, options: Any, request: dict[str, Any], *, replace: bool) -> AcceptedStatus:
        """Start building ``report_id`` unless a build of it is already queued or running (then join that one).

        Returns once the store has a record of the build, so an accepted build is never forgotten by a crash; raises
        :class:`StoreUnavailableError` when the record cannot be written (nothing is queued then).
        """
        if self._stopping:
            raise ServiceBusyError("the server is stopping")
        job = self._active.get(report_id)
        new = job is None
        if job is None:  # no await between this check and the registration: concurrent requests share one job
            if self.counts()["queued"] >= self.max_pending:
                raise ServiceBusyError(f"{self.max_pending} builds are already waiting")
            job = _Job(report_id=report_id, options=options, request=request, replace=replace)
            self._active[report_id] = job
            self._waiting.append(report_id)
            job.task = asyncio.create_task(self._run(job), name=f"build {report_id}")
        await job.recorded.wait()
        if job.record_error is not None:
            raise StoreUnavailableError(job.record_error)
        if new:
            self.counters.submitted += 1
        return job.status

    async def _record(self, job: _Job, status: JobStatus, reason: str | None = None) -> None:
        record = JobRecord(report_id=job.report_id, status=status, reason=reason, request=job.request)
        await asyncio.to_thread(self.store.set_job, record)

    async def _run(self, job: _Job) -> None:
        try:
            try:
                await self._record(job, "queued")
            except OSError as exc:
                job.record_error = f"the report store cannot be written ({exc.strerror or type(exc).__name__})"
                log.error("event=store_unwritable report_id=%s error=%r", job.report_id, str(exc))
                return
            finally:
                job.recorded.set()
            async with self._worker() as slot:
                fd = await self._lock(job)  # still queued (position 1) until the lock is this build's
                self._dequeue(job)
                try:
                    if await asyncio.to_thread(self._published_since_accepted, job):
                        log.info("event=build_reused report_id=%s", job.report_id)
                        await asyncio.to_thread(self.store.clear_job, job.report_id)
                        return
                    job.status, job.stage = "running", "building"
                    await self._record(job, "running")
                    log.info("event=build_start report_id=%s worker_pid=%d", job.report_id, slot[0].pid)
                    started = time.monotonic()
                    outcome = await asyncio.to_thread(
                        slot[0].run, self.backend.build, job.options, self.limits.timeout_s
                    )
                    if outcome.retire:
                        slot[0] = await self._replace(slot[0])
                    if outcome.files is None:
                        await self._fail(job, outcome)
                        return
                    job.stage = "publishing"
                    await asyncio.to_thread(self.store.publish, job.report_id, outcome.files, replace=job.replace)
                    await asyncio.to_thread(self.store.clear_job, job.report_id)
                    self.counters.published += 1
                    log.info(
                        "event=build_publish report_id=%s seconds=%.2f files=%d",
                        job.report_id,
                        time.monotonic() - started,
                        len(outcome.files),
                    )
                finally:
                    await asyncio.to_thread(self.store.unlock, fd)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a disk problem: the traceback in the log, a short reason in the store
            incident = secrets.token_hex(4)
            log.exception("event=build_error report_id=%s incident=%s", job.report_id, incident)
            await self._fail(job, BuildOutcome(error=f"internal error ({type(exc).__name__}, incident {incident})"))
        finally:
            self._dequeue(job)
            if self._active.get(job.report_id) is job:
                del self._active[job.report_id]

    def _dequeue(self, job: _Job) -> None:
        if job.report_id in self._waiting:
            self._waiting.remove(job.report_id)

    @contextlib.asynccontextmanager
    async def _worker(self) -> AsyncIterator[list[WorkerProcess]]:
        """An idle worker for the duration of one build (a one-item list, so the build may replace it)."""
        slot = [await self._idle.get()]
        try:
            yield slot
        finally:
            if not self._stopping:
                self._idle.put_nowait(slot[0])

    async def _replace(self, worker: WorkerProcess) -> WorkerProcess:
        self._all.discard(worker)
        await asyncio.to_thread(worker.stop)
        log.warning("event=worker_replaced old_pid=%d", worker.pid)
        return await asyncio.to_thread(self._new_worker)

    async def _lock(self, job: _Job) -> int:
        """The store's lock for this report id, polled while another server holds it (the stage says so then)."""
        while True:
            fd = await asyncio.to_thread(self.store.try_lock, job.report_id)
            if fd is not None:
                return fd
            self._dequeue(job)
            job.stage = "waiting for another server building the same report"
            await asyncio.sleep(self.limits.lock_poll_s)

    def _published_since_accepted(self, job: _Job) -> bool:
        """True when the report exists and needs no build: not asked to replace it, or published (by another
        server) after this request was accepted."""
        published = self.store.published_at(job.report_id)
        return published is not None and (not job.replace or published >= job.accepted_at)

    async def _fail(self, job: _Job, outcome: BuildOutcome) -> None:
        if outcome.details:
            log.error("event=build_fail report_id=%s details:\n%s", job.report_id, outcome.details)
        else:
            log.warning("event=build_fail report_id=%s error=%r", job.report_id, outcome.error)
        reason = (
            f"build failed: {public_text(outcome.error or 'unknown error')}; "
            "POST the request with force_rebuild true to try again"
        )
        self.counters.failed += 1
        with contextlib.suppress(OSError):
            await self._record(job, "failed", reason)
        await asyncio.to_thread(self.store.prune_failed, self.limits.failed_retention_s)


def _log_warmup_failure(future: asyncio.Task[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("event=warmup_failed error=%r", str(future.exception()))
