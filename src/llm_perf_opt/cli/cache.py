"""``llm-perf-opt cache info|clear``: the trace cache (one traced shape per entry, and the decode bases that answer
other output lengths; torch-free)."""

from __future__ import annotations

import click

from llm_perf_opt.analysis.prepare import queue_worker, stop_queue_worker
from llm_perf_opt.tracecache import CACHE_DIR_ENV, TraceCache

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """The trace cache: traces of (model source, shapes) reused by analyze (under $LLM_PERF_OPT_CACHE_DIR)."""


@cache.command()
def info() -> None:
    """Where the cache is, how many traces, decode bases and batch bases it holds and their size."""
    found = TraceCache().info()
    click.echo(f"trace cache: {found.root} (set {CACHE_DIR_ENV} to move it)")
    if found.root.exists() and not found.root.is_dir():
        click.echo("it is not a folder: nothing is cached (analyze warns and traces every time)")
        return
    traces, bases = _count(found.entries, "trace"), _count(found.bases, "decode basis")
    click.echo(
        f"entries: {traces} (traced or derived), {bases}, {_count(found.batch_bases, 'batch basis')}, "
        f"{found.bytes / 1e6:.1f} MB"
    )
    if found.queued:
        click.echo(f"{_count(found.queued, 'batch basis')} queued for the background process")
    worker = queue_worker(TraceCache().queue)
    if worker is not None:
        click.echo(f"background process {worker} is keeping batch bases (its traces land here as it goes)")
    if found.obsolete:
        click.echo(f"and {found.obsolete} figure entries an earlier version kept (unused; cache clear removes them)")


@cache.command()
def clear() -> None:
    """Delete every cached trace, decode basis and batch basis (the next analyze of each shape traces again); a
    background process keeping batch bases is stopped first."""
    store = TraceCache()
    if store.root.exists() and not store.root.is_dir():
        click.echo(f"trace cache {store.root} is not a folder: nothing to clear (set {CACHE_DIR_ENV} to a folder)")
        return
    stopped = stop_queue_worker(store.queue)  # first: what it builds would land in the emptied cache
    removed = store.clear()
    traces, bases = _count(removed.entries, "trace"), _count(removed.bases, "decode basis")
    if stopped is not None:
        click.echo(f"stopped background process {stopped} (it was keeping batch bases)")
    click.echo(f"removed {traces}, {bases} and {_count(removed.batch_bases, 'batch basis')} from {store.root}")


def _count(n: int, noun: str) -> str:
    """``1 trace``, ``2 traces``, ``1 batch basis``, ``0 batch bases``."""
    many = noun[:-2] + "es" if noun.endswith("is") else noun + "s"
    return f"{n} {noun if n == 1 else many}"
