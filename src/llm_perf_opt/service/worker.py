"""The worker-process side of a build: what runs inside the process pool.

Tracing is CPU-bound Python (forward hooks, a dispatch mode), so builds run in processes, not threads: a thread would
hold the GIL and stall the event loop that answers health checks and polls.  Workers are started with ``spawn`` (no
inherited event loop or threads), ignore Ctrl-C (the server decides), and exit as soon as the server process dies,
so a crashed server never leaves an orphan that publishes behind a restarted one.

Whatever a build raises comes back as a plain :class:`BuildOutcome`: exception classes with custom constructors do
not survive pickling, and a failed unpickle would break the whole pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait
from typing import Any

from attrs import frozen

from llm_perf_opt.errors import UserError

__all__ = ["BuildOutcome", "new_pool", "run_build", "started", "stop_pool"]


@frozen(kw_only=True)
class BuildOutcome:
    """The files of a finished build, or why it failed (``user`` = a one-line user mistake)."""

    files: dict[str, bytes] | None = None
    error: str | None = None
    user: bool = False
    details: str = ""


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])  # ready when the server process has exited, however it died
        os._exit(1)


def _init_worker(prepare: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    if prepare is not None:
        try:
            prepare()
        except Exception:  # an initializer that raises breaks the whole pool; the builds will report the error
            traceback.print_exc()


def started() -> int:
    """A no-op task: submitting one per worker makes the pool start (and warm up) every process now."""
    return os.getpid()


def run_build(build: Callable[[Any], Mapping[str, bytes]], options: Any) -> BuildOutcome:
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
    except Exception as exc:
        return BuildOutcome(error=f"{type(exc).__name__}: {exc}", details=traceback.format_exc())


def new_pool(workers: int, prepare: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that die with the server; each runs ``prepare()`` once at start."""
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(prepare,),
    )
    for _ in range(workers):  # processes start on demand: one submission each starts them all
        pool.submit(started)
    return pool


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: drop queued work and end the processes (a running build is abandoned)."""
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if callable(terminate):
        terminate()
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}  # no public API before 3.14
    for process in list(processes.values()):
        process.terminate()
