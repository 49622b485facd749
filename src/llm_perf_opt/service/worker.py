"""The worker processes that run builds: one long-lived process per build slot, bounded in time and memory.

Tracing is CPU-bound Python (forward hooks, a dispatch mode), so builds run in processes, not threads: a thread would
hold the GIL and stall the event loop that answers health checks and polls.  Each worker is a ``spawn``ed process
(no inherited event loop or threads) that talks to the server over one pipe: it receives ``(build, options)`` and
answers a :class:`BuildOutcome`.  It ignores Ctrl-C (the server decides), exits as soon as the server process dies
(so a crashed server never leaves an orphan that publishes behind a restarted one), and runs under
``RLIMIT_AS`` (the memory ceiling).  The server enforces the wall-clock limit: a build past it is failed and its
worker terminated and replaced.  Only pipes are used (no queues or locks), so stopping leaks no semaphores.

Whatever a build raises comes back as a plain :class:`BuildOutcome`: exception classes with custom constructors do
not survive pickling.  Tracebacks stay in ``details`` (for the server log), never in ``error`` (for the client).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection, wait
from typing import Any

from attrs import frozen

from llm_perf_opt.errors import UserError

__all__ = ["BuildOutcome", "WorkerProcess", "run_build"]


@frozen(kw_only=True)
class BuildOutcome:
    """The files of a finished build, or why it failed (``user`` = a one-line user mistake)."""

    files: dict[str, bytes] | None = None
    error: str | None = None
    user: bool = False
    details: str = ""
    #: the worker is no longer trustworthy (out of memory): replace it
    retire: bool = False


def run_build(build: Callable[[Any], Mapping[str, bytes]], options: Any, memory_mb: int = 0) -> BuildOutcome:
    """Run ``build(options)`` and check its result: a mapping of relative file name to bytes."""
    try:
        files = build(options)
        if not isinstance(files, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bytes) for k, v in files.items()
        ):
            raise TypeError(f"build returned {type(files).__name__}; expected a mapping of file name to bytes")
        return BuildOutcome(files=dict(files))
    except UserError as exc:
        return BuildOutcome(error=str(exc), user=True)
    except MemoryError:
        limit = f"the server's limit of {memory_mb} MB per build (serve --build-memory-mb)" if memory_mb else "memory"
        return BuildOutcome(error=f"the build needed more memory than {limit}", retire=True)
    except Exception as exc:
        return BuildOutcome(error=f"internal error ({type(exc).__name__})", details=traceback.format_exc())


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])  # ready when the server process has exited, however it died
        os._exit(1)


def _worker_main(conn: Connection, prepare: Callable[[], None] | None, memory_mb: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if prepare is not None:
        try:
            prepare()
        except Exception:  # the builds will report the error
            traceback.print_exc()
    while True:
        try:
            build, options = conn.recv()
        except (EOFError, OSError):
            return
        outcome = run_build(build, options, memory_mb)
        try:
            conn.send(outcome)
        except MemoryError:
            conn.send(BuildOutcome(error="the build's files did not fit the worker's memory limit", retire=True))


class WorkerProcess:
    """One spawned build process and the server's end of its pipe."""

    def __init__(self, *, prepare: Callable[[], None] | None = None, memory_mb: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, prepare, memory_mb), name="llm-perf-opt-build", daemon=True
        )
        self.process.start()
        child.close()
        self.pid: int = self.process.pid or 0

    def run(self, build: Callable[[Any], Mapping[str, bytes]], options: Any, timeout_s: float | None) -> BuildOutcome:
        """Run one build (blocking: call it from a thread); a dead or timed-out worker gives a failed outcome with
        ``retire`` set (the caller replaces the worker)."""
        try:
            self.conn.send((build, options))
        except (BrokenPipeError, OSError):
            return BuildOutcome(
                error="the worker process building this report died (out of memory or killed)", retire=True
            )
        ready = wait([self.conn, self.process.sentinel], timeout_s)
        if self.conn in ready:
            try:
                outcome: BuildOutcome = self.conn.recv()
                return outcome
            except (EOFError, OSError):
                pass
        if not ready:
            return BuildOutcome(
                error=f"the build ran longer than the server's limit of {timeout_s:g} s (serve --build-timeout-s); "
                "try a smaller workload (batch, pages, tokens)",
                retire=True,
            )
        return BuildOutcome(error="the worker process building this report died (out of memory or killed)", retire=True)

    def stop(self, grace_s: float = 2.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``grace_s``) and close the pipe."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace_s)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(grace_s)
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):
            self.process.close()
