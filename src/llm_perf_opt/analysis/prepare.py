"""Keep a batch basis of a workload's shapes in the background, so the first batch change is derived too.

The trace cache derives another batch of traced shapes from a batch basis (three more language traces; see
:mod:`llm_perf_opt.analysis.trace_step`). Built in the foreground, the basis would cost every cold run those traces,
or the first batch change all of them.  Instead, when ``analyze`` (or a build of the HTTP service) traces shapes the
cache has never seen, :func:`prepare_batch_basis_later` queues a request for their basis in the cache
(``prepare/<key>.json``, one per shapes) and starts a background process (its own session, lowered priority, no
output). Where the command's process may fork and the machine has a second core, the process is a child forked from it
right after its trace (it starts with torch imported and the model tree the command traced with, on the other core,
while the command writes its report); otherwise it is ``python -m llm_perf_opt.analysis.prepare``, which waits until
the command has exited (a service's build worker, which goes on, starts it at once and reaps it). Either way the
command is not slowed down, and the process works the queue (:func:`drain`) if no other such process does (a ``flock``
on ``prepare/.lock``, which names its holder; the holder takes the requests queued meanwhile too, so a loop of cold
runs gets one busy process, not one per run). For each request (on one model tree built for it) it traces the shapes
at the basis's first batch, whose language passes are then that point's (or the workload's batch, when larger; at
least :data:`~llm_perf_opt.tracer.batch_fit.EXTRAPOLATE_FROM` rows), with a basis, and stores both
(:func:`~llm_perf_opt.analysis.trace_step.build_batch_basis`). The basis derives every batch from 1 on (its low
points, :data:`~llm_perf_opt.tracer.batch_derive.LOW_POINTS`); when it keeps fewer of them, the process traces the
batches below them too (:func:`prepared_batches`). The basis is kept about three to five seconds after a cold run on a
2-core machine; then every batch of those shapes is derived in under a second.  A batch change made while the basis
is built asks the process for its batch (:func:`waited_for_basis`: a file in ``prepare/wishes/``), and the process
traces it before its next pass, on its warm tree with the row stages it traced already (:class:`_Wishes`), and
stores it where the command reads it: 0.35-0.45 s for DeepSeek-OCR v1, so the command answers in under a second
there too (a trace of its own took 1.7 s, and the wait for the basis up to 1.5 s more; DeepSeek-OCR-2's trace is
about 0.5 s, its command 0.85 s).  A process forked from a command traces the
page's row stages while that command exits, then waits :data:`WISH_WINDOW_S` for such a wish before it starts the
basis: a script's next command comes about 0.15 s later.

Only the built-in DeepSeek-OCR v1 sources and DeepSeek-OCR-2 keep a basis (:data:`BASIS_KINDS`), so only they start
one.  DeepSeek-OCR-2's basis holds every stage (its vision encodes all rows in one call) and is stored once, with its
low batches (about 9 s after a cold run); a batch change made before then is traced by the process too.
``LLM_PERF_OPT_PREPARE=0`` (:data:`PREPARE_ENV`) turns it off; ``--no-cache`` never starts one.  Writes are the
cache's own (atomic): a process that is killed leaves nothing half-written (a request is taken off the queue before
it is worked, so none is retried forever, and so is a wish), and a batch change waiting for it then traces as it
would without it.
The process says nothing; a request is queued at most once per shapes (the cache's note that the shapes were seen
stops the next run from queueing another).  ``llm-perf-opt cache clear`` empties the queue too, and stops the
process working it first (:func:`stop_queue_worker`), so nothing it builds lands in the emptied cache.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs

from llm_perf_opt.analysis.trace_step import (
    TraceOutcome,
    build_batch_basis,
    built_model,
    cached,
    entry_path,
    first_basis_batch,
    rows_ahead,
    shapes_key,
    traced,
)
from llm_perf_opt.contracts.converter import converter
from llm_perf_opt.core.atomic import atomic_write_bytes
from llm_perf_opt.core.processes import pid_alive
from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import TraceCache, trace_key
from llm_perf_opt.tracer.lazy_metas import defer_python_metas
from llm_perf_opt.tracer.sharing import between_passes, remembering_rows
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

try:
    import fcntl
except ImportError:  # no flock (Windows): no background process, a first batch change traces
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BASIS_KINDS",
    "BASIS_WAIT_LIMIT_S",
    "LOCK_NAME",
    "NICENESS",
    "PREPARED_BATCHES",
    "PREPARED_POWERS",
    "PREPARED_UP_TO",
    "PREPARE_ENV",
    "STOP_WAIT_S",
    "WAIT_LIMIT_S",
    "WORKING_NAME",
    "Background",
    "Forked",
    "basis_builder",
    "basis_in_progress",
    "drain",
    "main",
    "prepare_batch_basis_later",
    "prepare_request",
    "prepared_batches",
    "queue_worker",
    "stop_queue_worker",
    "waited_for_basis",
]

PREPARE_ENV = "LLM_PERF_OPT_PREPARE"
"""``0`` keeps ``analyze`` from starting the background basis process (any other value, or unset: it may)."""

NICENESS = 10
"""The background process lowers its priority by this much, so the commands a person runs next come first."""

PREPARED_BATCHES = (4, 2)
"""Batches below the basis's range that people try first, traced (and kept) right after the basis (all of them when
no basis is kept)."""

PREPARED_UP_TO = 16
"""After those, every other batch below the basis's range up to this one is traced too (none without a basis)."""

PREPARED_POWERS = (32, 64, 128, 256, 512)
"""Then those of these powers of two that are below it too (a basis without low points starts late under skewed
routing: at batch 42 for ``skewed:1.2``, 208 for ``skewed:2`` with the standard shapes)."""

WAIT_LIMIT_S = 600.0
"""The background process gives up when the command that started it is still running after this long."""

LOCK_NAME = ".lock"
"""The queue's lock file: whoever holds its ``flock`` works the queue; the others leave their request to it."""

WORKING_NAME = ".working"
"""While the background process builds a batch basis, this file in the queue names the process and the shapes."""

BASIS_WAIT_LIMIT_S = 120.0
"""A batch change waits at most this long for the basis the background process is building (then traces)."""

STOP_WAIT_S = 5.0
""":func:`stop_queue_worker` waits at most this long for the process it stops to let go of the queue."""

WISH_WINDOW_S = 0.3
"""A background process forked from a command waits this long once the command has exited (the rows of its first
trace done) for a batch change to ask for its batch before it goes on with the basis: a script's next command asks
about 0.15 s after the last one exits, and is then served by a trace of its own batch at once."""

_WISH_POLL_S = 0.01
"""How often an asker looks for the batch it asked for, and the background process for wishes in its window."""

_PARENT_LIMIT_S = 5.0
"""The window opens only once the forking command has exited, if it does within this long."""

BASIS_KINDS = ("builtin-v1", "deepseek-ocr-2")
"""The model source kinds whose batch basis a background process keeps (the built-in v1 trees, whose modules the
tracer replays, and DeepSeek-OCR-2, whose MoE layers its source names)."""


def prepare_request(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    wish: bool = False,
) -> dict[str, Any] | None:
    """What the background process needs to keep ``workload``'s batch basis (JSON-ready), or None when no basis is
    kept for ``source`` or :data:`PREPARE_ENV` is ``0``; with ``wish``, what it needs to trace ``workload`` for a
    command that waits for it (whatever :data:`PREPARE_ENV` says: that process runs already)."""
    if (os.environ.get(PREPARE_ENV) == "0" and not wish) or getattr(source, "kind", None) not in BASIS_KINDS:
        return None
    return {
        "model": source.name,
        "workload": converter.unstructure(workload),
        "ocr2": isinstance(workload, Ocr2Workload),
        "attention": attention,
        "routing": converter.unstructure(routing),
        "cache": str(cache.root),
    }


def prepare_batch_basis_later(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    after_this_process: bool = True,
    model: Any = None,
) -> Background | None:
    """Queue ``workload``'s batch basis in ``cache`` and start a background process working the queue (module
    docstring); returns it, or None when none is started.  Where this process may fork and has another core, a child
    forked from it works the queue at once on that core, with this process's imports (no second ``import torch``; and
    this process's tree of ``source``, ``model``, when given: it was built for ``attention``); otherwise a new
    process does.  With ``after_this_process`` (a command line's process, about to write its report and exit) the
    command is not slowed down: the new process starts working once this one has exited.  Without it (a process that
    goes on: the service's build workers) it works at once.  A thread of this process reaps either."""
    request = prepare_request(source, workload, attention=attention, routing=routing, cache=cache)
    if request is None or fcntl is None:
        return None
    queue = cache.queue
    text = json.dumps(request, sort_keys=True)
    try:
        queue.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(queue / f"{trace_key(request)}.json", text.encode("utf-8"))
        if _may_fork():
            models: dict[tuple[str, str], Any] = {} if model is None else {(source.name, attention): model}
            return _forked_worker(queue, models, goes_on=not after_this_process)
        after = str(os.getpid()) if after_this_process else ""
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(queue), after],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hang-up once analyze has returned
            env={**os.environ, PREPARE_ENV: "0"},
        )
        # no zombie left in a process that goes on (a service's worker) once it ends
        threading.Thread(target=process.wait, name="batch-basis-reaper", daemon=True).start()
        return process
    except OSError:
        return None  # the basis is an optimisation: without it the first batch change traces


class Background(Protocol):
    """A background process started by :func:`prepare_batch_basis_later` (a ``subprocess.Popen`` or
    :class:`Forked`)."""

    @property
    def pid(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int: ...


class Forked:
    """A child forked from this process to work the queue (:func:`prepare_batch_basis_later`); a thread of this
    process waits for it, so none is left a zombie in a process that goes on (a service's build worker)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._code: int | None = None
        self._ended = threading.Event()
        threading.Thread(target=self._reap, name="batch-basis-reaper", daemon=True).start()

    def _reap(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self._code = os.waitstatus_to_exitcode(status)
        self._ended.set()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (0: done), once it has exited; ``subprocess.TimeoutExpired`` after ``timeout`` s."""
        if not self._ended.wait(timeout) or self._code is None:
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        return self._code


def _may_fork() -> bool:
    """Whether a queue worker may be forked from this process: ``os.fork`` exists and another core is there."""
    if not hasattr(os, "fork"):
        return False
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return cores >= 2


def _forked_worker(queue: Path, models: Mapping[tuple[str, str], Any], *, goes_on: bool = False) -> Forked:
    """Fork a child that works ``queue`` (:func:`drain`) in its own session at lowered priority, with its standard
    streams on ``/dev/null`` (a pipe or socket this process writes to is not held open; a lock another thread of this
    process held at the fork, a progress spinner's, is never needed) and leaves with ``os._exit``.  ``goes_on``: this
    process goes on (a service's build worker): its collector sees its objects again."""
    # the objects alive now leave the collector's view in both processes: a collection would otherwise write to every
    # one of them, copying each page of the shared heap in whichever process runs it (analyze then wrote its report
    # about 0.3-0.5 s slower beside the child, and the child ran slower too)
    thawed = gc.get_freeze_count() == 0
    gc.freeze()
    pid = os.fork()
    if pid:
        if goes_on and thawed:  # (frozen for good, cyclic garbage alive now would never be collected)
            gc.unfreeze()
        return Forked(pid)
    code = 1
    try:
        os.setsid()  # not stopped by the terminal's Ctrl-C or hang-up once analyze has returned
        _detach_streams()
        torch = sys.modules.get("torch")
        if torch is not None:  # OpenMP's thread team does not survive a fork: a parallel region would wait forever
            torch.set_num_threads(1)
        os.environ[PREPARE_ENV] = "0"
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
        drain(queue, models, window_after=None if goes_on else os.getppid())
        code = 0
    finally:
        os._exit(code)


def _detach_streams() -> None:
    """Point every inherited pipe, socket and terminal (standard streams included) at ``/dev/null``: a reader of
    the command's output gets its end of file when the command exits, and nothing this process writes is seen.
    The descriptors stay open (on ``/dev/null``), so no object holding one closes another file by its number."""
    devnull = os.open(os.devnull, os.O_RDWR)
    folder = Path("/proc/self/fd")
    numbers = [int(p.name) for p in folder.iterdir()] if folder.is_dir() else list(range(256))
    for fd in numbers:
        with contextlib.suppress(OSError):
            mode = os.fstat(fd).st_mode
            if fd != devnull and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
                os.dup2(devnull, fd)
    sys.stdout = sys.stderr = Path(os.devnull).open("w")  # noqa: SIM115 (left with os._exit)
    warnings.simplefilter("ignore")


def waited_for_basis(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    say: Callable[[str], None],
    limit_s: float | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> TraceOutcome | None:
    """``workload`` from the cache, served by the background process that is building the batch basis of its shapes
    right now (at most ``limit_s`` seconds, default :data:`BASIS_WAIT_LIMIT_S`): it is asked for this batch (a wish,
    :class:`_Wishes`) and traces it before its next pass, on its warm tree - 0.35-0.45 s for v1 on a 2-core machine,
    where a trace here takes 1.7 s - or derives it from the basis once kept, whichever comes first.  None at once when
    nothing builds that basis, and None when the process ends or lets go of the shapes without serving the batch
    (the caller traces it).  ``meanwhile``: the caller's work that needs no trace, called once the wish is written
    (this process's core is idle while it waits)."""
    key = shapes_key(source, workload, attention=attention, routing=routing)
    pid = basis_builder(cache.queue, key)
    if pid is None:
        return None
    shapes: dict[str, Any] = {"attention": attention, "routing": routing, "cache": cache}
    served = cached(source, workload, **shapes)
    if served is not None:
        return served
    wish = _wished(source, workload, key=key, **shapes)
    if wish is None:
        return None
    say(f"waiting for background process {pid}: it traces this batch next (sooner than a trace here)")
    exact = entry_path(source, workload, **shapes)
    kept = cache.batch_path(key)
    seen = _stamp(kept)
    deadline = time.monotonic() + (BASIS_WAIT_LIMIT_S if limit_s is None else limit_s)
    try:
        if meanwhile is not None:
            meanwhile()
        while basis_builder(cache.queue, key) == pid and time.monotonic() < deadline:
            time.sleep(_WISH_POLL_S)
            stamp = _stamp(kept)
            if exact.exists() or (stamp is not None and stamp != seen):  # traced, or a basis stored that may derive it
                seen = stamp
                served = cached(source, workload, **shapes)
                if served is not None:
                    return served
    finally:
        with contextlib.suppress(OSError):
            wish.unlink()  # (when it is not taken yet: nobody waits for it now)
    return cached(source, workload, **shapes)


def _wished(
    source: Any,
    workload: Any,
    *,
    cache: TraceCache,
    key: str,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
) -> Path | None:
    """Ask the background process building the basis of the shapes ``key`` for ``workload``: a file in the cache's
    wishes folder naming it and this process (:class:`_Wishes` traces it); its path, or None when it cannot be
    written."""
    request = prepare_request(source, workload, attention=attention, routing=routing, cache=cache, wish=True)
    if request is None:
        return None
    request["pid"] = os.getpid()
    path = cache.wishes / f"{key}.{trace_key(request)}.json"
    try:
        cache.wishes.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(request, sort_keys=True).encode("utf-8"))
    except OSError:
        return None
    return path


def _stamp(path: Path) -> int | None:
    """``path``'s modification time in ns, or None when there is none."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def basis_in_progress(
    source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel, cache: TraceCache
) -> bool:
    """Whether a live background process is building the batch basis of ``workload``'s shapes now (a trace of
    another batch of them should then not build the same basis beside it)."""
    return basis_builder(cache.queue, shapes_key(source, workload, attention=attention, routing=routing)) is not None


def basis_builder(queue: Path, key: str) -> int | None:
    """The live process building the batch basis of the shapes ``key`` now: the one the :data:`WORKING_NAME` marker
    in ``queue`` names, when it holds the queue's lock now (the builder works under it; a marker a killed worker left
    may name a process that has its pid by now, after a restart say: a batch change would wait for it, and no basis
    would be built beside it); else None."""
    try:
        marker = json.loads((queue / WORKING_NAME).read_text(encoding="utf-8"))
        pid = int(marker["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if marker.get("shapes") == key and queue_worker(queue) == pid else None


@contextlib.contextmanager
def _building(queue: Path, key: str) -> Iterator[None]:
    """:data:`WORKING_NAME` names this process and the shapes ``key`` for the block."""
    marker = queue / WORKING_NAME
    mine = json.dumps({"pid": os.getpid(), "shapes": key}).encode("utf-8")
    atomic_write_bytes(marker, mine)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if marker.read_bytes() == mine:
                marker.unlink()


def main(argv: Sequence[str] | None = None, *, niceness: int = NICENESS) -> int:
    """``python -m llm_perf_opt.analysis.prepare QUEUE [PID]``: once process ``PID`` (if given) has exited, work
    the requests queued in ``QUEUE`` (:func:`drain`) at ``niceness`` lower priority; exit 0, or 2 when ``PID`` still
    ran after :data:`WAIT_LIMIT_S` (nothing done)."""
    queue, after = (*(sys.argv[1:] if argv is None else argv), "")[:2]
    defer_python_metas()  # a process of ours that only traces (before anything imports torch)
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on some systems: run at normal priority
        os.nice(niceness)
    if after and not _exited(int(after), limit_s=WAIT_LIMIT_S):
        return 2
    drain(Path(queue))
    return 0


def drain(queue: Path, models: Mapping[tuple[str, str], Any] | None = None, *, window_after: int | None = None) -> int:
    """Work the requests in ``queue``, oldest first, until none is left - unless another process holds the queue's
    lock (it works ours too: a holder looks again after letting go); a request of a ``(model, attention)`` in
    ``models`` uses that tree instead of building one.  ``window_after``: the command this process was forked from;
    the first request waits a moment for a batch change once it has exited (:data:`WISH_WINDOW_S`).  Returns how
    many bases were kept."""
    kept = 0
    while True:
        with _locked(queue) as held:
            if not held:
                return kept
            while (path := _oldest(queue)) is not None:
                kept += _work(path, models or {}, window_after=window_after)
                window_after = None
        if _oldest(queue) is None:
            return kept


def _work(path: Path, models: Mapping[tuple[str, str], Any], *, window_after: int | None = None) -> int:
    """Take the request at ``path`` off the queue and work it: its batch basis, then the batches below what the basis
    derives (:func:`prepared_batches`); 1 when a basis is kept.  Meanwhile, before each pass it traces, the batches
    of these shapes someone waits for are traced first (:class:`_Wishes`; ``window_after`` as in :func:`drain`).  A
    request that cannot be read or worked is dropped (nothing retries it forever)."""
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()
        source = resolve_model_source(request["model"])
        workload = _workload_of(request)
        routing = converter.structure(request["routing"], RoutingModel)
        cache = TraceCache(Path(request["cache"]))
    except (OSError, ValueError, KeyError, TypeError, UserError):
        with contextlib.suppress(OSError):
            path.unlink()
        return 0
    shapes: dict[str, Any] = {"attention": request["attention"], "routing": routing, "cache": cache}
    lowest: int | None = None
    with contextlib.suppress(Exception):  # a request that fails to trace must not strand the ones queued after it
        key = shapes_key(source, workload, attention=request["attention"], routing=routing)
        # named at once: a batch change made meanwhile waits for this basis rather than building it too (a tree to
        # build, then the search for the first point: 2.8 s under skewed:8)
        with _building(path.parent, key), remembering_rows():
            model = models.get((source.name, request["attention"]))  # one tree for all its traces
            model = model if model is not None else built_model(source, attention=request["attention"])
            shapes["model"] = model

            def rows() -> None:
                rows_ahead(source, workload, attention=request["attention"], routing=routing, model=model)

            wishes = _Wishes(cache, key, source, shapes, window_after=window_after, ahead=rows)
            wishes()  # (its window, in which it traces the page's row stages: the basis and every wish read them)
            first = first_basis_batch(source, workload, routing=routing, model=model)
            with between_passes(wishes):
                lowest = build_batch_basis(source, workload, first=first, **shapes)
        for batch in prepared_batches(lowest, traced_at=(workload.batch_size,)):
            traced(source, attrs.evolve(workload, batch_size=batch), **shapes)
    return int(lowest is not None)


class _Wishes:
    """The batches of the shapes ``key`` that commands wait for while this process builds their basis (one file
    each in the queue's wishes folder, written by :func:`waited_for_basis`): called before each pass of the build
    (:func:`~llm_perf_opt.tracer.sharing.between_passes`), it traces and stores each of them at once, on the same tree
    (its row stages read from the build's, :func:`~llm_perf_opt.tracer.sharing.remembering_rows`), where the command
    finds it: 0.35-0.45 s for v1 on a 2-core machine, where waiting for the basis took up to 1.5 s and a trace of the
    command's own 1.7 s.  The first call, with ``window_after`` (the command this process was forked from), runs
    ``ahead`` (the page's row stages, traced meanwhile), waits for that command to exit and then
    :data:`WISH_WINDOW_S` for a wish, so a script's next command is served before the basis starts."""

    def __init__(
        self,
        cache: TraceCache,
        key: str,
        source: Any,
        shapes: Mapping[str, Any],
        *,
        window_after: int | None = None,
        ahead: Callable[[], None] | None = None,
    ) -> None:
        self.folder = cache.wishes
        self.key = key
        self.source = source
        self.shapes = dict(shapes)
        self.window_after = window_after
        self.ahead = ahead  # what the window does first, while the command exits (trace the page's rows)

    def __call__(self) -> None:
        if self.window_after is not None:
            parent, self.window_after = self.window_after, None
            self._window(parent)
        for path in self._pending():
            self._serve(path)

    def _pending(self) -> list[Path]:
        try:
            return sorted(self.folder.glob(f"{self.key}.*.json"))
        except OSError:
            return []

    def _window(self, parent: int) -> None:
        """Wait until ``parent`` has exited (this process is then another's child), then for a wish, at most
        :data:`WISH_WINDOW_S`."""
        if self.ahead is not None:
            with contextlib.suppress(Exception):  # (then the traces trace the rows themselves)
                self.ahead()
        limit = time.monotonic() + _PARENT_LIMIT_S
        while os.getppid() == parent and time.monotonic() < limit:
            time.sleep(_WISH_POLL_S)
        if os.getppid() == parent:
            return
        end = time.monotonic() + WISH_WINDOW_S
        while not self._pending() and time.monotonic() < end:
            time.sleep(_WISH_POLL_S)

    def _serve(self, path: Path) -> None:
        """Trace the wish at ``path`` (taken off first: a wish that fails is not tried again) when its asker still
        waits."""
        try:
            request = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
        except (OSError, ValueError):
            return
        with contextlib.suppress(Exception):  # a wish that fails to trace must not stop the basis (its asker traces)
            if not pid_alive(int(request["pid"])):
                return
            traced(self.source, _workload_of(request), keep_batch_basis=False, whole_context=False, **self.shapes)


def _workload_of(request: Mapping[str, Any]) -> Workload | Ocr2Workload:
    """The workload of a queued request or a wish."""
    raw = request["workload"]
    return converter.structure(raw, Ocr2Workload) if request.get("ocr2") else converter.structure(raw, Workload)


def prepared_batches(lowest: int | None, *, traced_at: tuple[int, ...]) -> list[int]:
    """The batches traced after a basis that derives from ``lowest`` on (None: no basis), in order: those of
    :data:`PREPARED_BATCHES` below it, then every other batch below it up to :data:`PREPARED_UP_TO`, then the
    :data:`PREPARED_POWERS` below it; none of ``traced_at`` (traced already).  None at all for a basis that derives
    every batch (from 1)."""
    first = [b for b in PREPARED_BATCHES if lowest is None or b < lowest]
    below: list[int] = []
    if lowest is not None:
        below = [*range(1, min(lowest, PREPARED_UP_TO + 1)), *(p for p in PREPARED_POWERS if p < lowest)]
    ordered = dict.fromkeys((*first, *below))
    return [batch for batch in ordered if batch not in traced_at]


def _oldest(queue: Path) -> Path | None:
    """The request queued first (by modification time, then name), or None."""
    waiting = []
    for path in queue.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):
            waiting.append((path.stat().st_mtime_ns, path.name, path))
    return min(waiting)[2] if waiting else None


@contextlib.contextmanager
def _locked(queue: Path) -> Iterator[bool]:
    """Hold the queue's lock (``.lock``, an exclusive ``flock`` the system drops when the holder dies) for the
    block; yields False when another process holds it (:func:`_taken`)."""
    assert fcntl is not None  # prepare_batch_basis_later starts no process where there is no flock
    fd = os.open(queue / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _taken(fd):
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who works the queue (queue_worker)
        try:
            yield True
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor lets go of the lock


_TAKE_TRIES = 4
""":func:`_taken` tries this many times, 10 ms apart, before it leaves the lock to its holder."""


def _taken(fd: int) -> bool:
    """Take the exclusive ``flock`` of ``fd``; False when another holds it through :data:`_TAKE_TRIES` tries (a
    :func:`_lock_held` probe holds it for microseconds: a worker starting then must not leave its request to it)."""
    assert fcntl is not None
    for attempt in range(_TAKE_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if attempt + 1 < _TAKE_TRIES:
                time.sleep(0.01)
        else:
            return True
    return False


def queue_worker(queue: Path) -> int | None:
    """The live process holding ``queue``'s lock (the one working it), or None (also when the lock is not held: a
    pid a killed holder left in the file may be another process's by now)."""
    if not _lock_held(queue):
        return None
    try:
        pid = int((queue / LOCK_NAME).read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_queue_worker(queue: Path, *, wait_s: float = STOP_WAIT_S) -> int | None:
    """Stop the process working ``queue`` now (``cache clear``: the basis it builds would land in the emptied cache
    after the clear): ``SIGTERM``, and ``SIGKILL`` when it still holds the queue's lock ``wait_s`` seconds later;
    then take away the :data:`WORKING_NAME` marker it leaves.  Returns its pid, or None when none was stopped: no
    other process works the queue (:func:`queue_worker`: only a holder of the lock is signalled), or another user's
    does.  Its writes are atomic: nothing it stored is half-written, and its temporary files are the cache's to
    clear."""
    pid = queue_worker(queue)
    if pid is None or pid == os.getpid() or not _signalled(pid, signal.SIGTERM):
        return None
    if not _let_go(queue, wait_s) and _signalled(pid, signal.SIGKILL):
        _let_go(queue, wait_s)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if json.loads((queue / WORKING_NAME).read_text(encoding="utf-8"))["pid"] == pid:
            (queue / WORKING_NAME).unlink()
    return pid


def _signalled(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; False when it is gone or not this user's."""
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _let_go(queue: Path, wait_s: float) -> bool:
    """Wait until nobody holds ``queue``'s lock (at most ``wait_s`` seconds); whether nobody does."""
    deadline = time.monotonic() + wait_s
    while _lock_held(queue):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _lock_held(queue: Path) -> bool:
    """Whether a process holds ``queue``'s lock now (this one's own holds count: ``flock`` locks an open file).  The
    probe takes the lock for a moment when nobody holds it (:func:`_taken` tries again past that)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(queue / LOCK_NAME, os.O_RDONLY)  # (flock needs no write access: another user's lock file)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (lets go of the lock when this took it)
    return False


def _exited(pid: int, *, limit_s: float) -> bool:
    """Wait until process ``pid`` has exited; False when it still runs after ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
