"""``llm-perf-opt cache info|clear``: the trace cache (one traced shape per entry; torch-free)."""

from __future__ import annotations

import click

from llm_perf_opt.tracecache import CACHE_DIR_ENV, TraceCache

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """The trace cache: traces of (model source, shapes) reused by analyze (under $LLM_PERF_OPT_CACHE_DIR)."""


@cache.command()
def info() -> None:
    """Where the cache is, how many traces it holds and their size."""
    found = TraceCache().info()
    click.echo(f"trace cache: {found.root} (set {CACHE_DIR_ENV} to move it)")
    click.echo(f"entries: {found.entries}, {found.bytes / 1e6:.1f} MB")


@cache.command()
def clear() -> None:
    """Delete every cached trace (the next analyze of each shape traces again)."""
    store = TraceCache()
    removed = store.clear()
    click.echo(f"removed {removed} trace(s) from {store.root}")
