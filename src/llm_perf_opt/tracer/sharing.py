"""What a process that traces one tree many times shares between its traces (torch-free, so a process may set it up
before it imports torch): a hook run between passes, and the row stages of a page's shapes.

The background process that keeps a batch basis (:mod:`llm_perf_opt.analysis.prepare`) traces one tree at several
batches.  Under :func:`between_passes` its traces call a hook before each pass, where it traces a batch someone waits
for on the same tree (a trace of its own, in its own state: between two passes nothing of the other trace is
installed on the tree); under :func:`remembering_rows` the batched traces of one page's shapes trace the row stages
(vision and projector at batch 1, 2, 3) once and read them after that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import attrs

from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.workloads import Workload

__all__ = ["RowMemo", "at_boundary", "between_passes", "remembering_rows", "rows_memo"]

RowMemo = dict[int, RawTrace]
"""The row stages traced at each of the batch points for one tree and one page's shapes: a trace given one that
holds them reads them instead of tracing them again (a trace that finds it empty fills it)."""

_BETWEEN_PASSES: ContextVar[Callable[[], None] | None] = ContextVar("between_passes", default=None)
_ROW_MEMOS: ContextVar[dict[tuple[Any, ...], tuple[Any, RowMemo]] | None] = ContextVar("row_memos", default=None)


@contextlib.contextmanager
def between_passes(hook: Callable[[], None]) -> Iterator[None]:
    """For the block, ``hook`` runs before every pass a trace runs in its own state - every pass but the row passes
    cut after the vision stages and a pass replaying stubbed anchors - so it may trace the same tree itself.  What
    the hook traces makes no such calls of its own."""
    token = _BETWEEN_PASSES.set(hook)
    try:
        yield
    finally:
        _BETWEEN_PASSES.reset(token)


def at_boundary() -> None:
    """Run the :func:`between_passes` hook, if any (the tracer calls this before a pass)."""
    hook = _BETWEEN_PASSES.get()
    if hook is None:
        return
    token = _BETWEEN_PASSES.set(None)  # (the hook's own traces run without it)
    try:
        hook()
    finally:
        _BETWEEN_PASSES.reset(token)


@contextlib.contextmanager
def remembering_rows() -> Iterator[None]:
    """For the block, the batched traces of one tree and one page's shapes share their row stages: traced at batch
    1, 2, 3 by the first, read by the others (0.06-0.13 s of each later trace of the standard page).  The rows are the
    same at any batch, output length and routing, so the memo is keyed by the tree, the attention, the tracing flags
    and the workload at batch 1 and one new token, without its preset name (:func:`rows_memo`)."""
    token = _ROW_MEMOS.set({})
    try:
        yield
    finally:
        _ROW_MEMOS.reset(token)


def rows_memo(model: Any, work: Any, *, source: str, attention: str, verify: bool, replay: bool) -> RowMemo | None:
    """The :data:`RowMemo` of ``model`` (a tree) and ``work``'s page shapes under :func:`remembering_rows`, else
    None (also for a workload that is not a v1 page)."""
    memos = _ROW_MEMOS.get()
    if memos is None or not isinstance(work, Workload):
        return None
    try:
        # (nor by the preset a page came from: a batch override drops its name, and the rows of the command's
        # preset, traced ahead, were traced again for every batch change, 0.12 s of each)
        page = repr(attrs.evolve(work, batch_size=1, max_new_tokens=1, profile_id=None))
    except (ValueError, TypeError):  # (a workload whose checks refuse it: no memo, the rows are traced)
        return None
    key = (id(model), source, attention, verify, replay, page)
    held = memos.get(key)
    if held is None or held[0] is not model:  # (an id the collector gave to a new tree)
        held = memos[key] = (model, {})
    return held[1]
