"""The trace step of an analysis, served from the trace cache when the same shapes were traced before.

The key (:func:`~llm_perf_opt.tracecache.trace_key_parts`) holds everything that decides a trace: the model source's
name and kind, a hash of the code that builds and traces it, the config, the workload's shapes, the attention kernel
and the routing model; for remote code also its snapshot fingerprint and the installed transformers.  Device, dtype
and time profile are not in it: they only change the timing of an unchanged trace.  On a hit nothing imports torch.

On a miss, a trace of the same shapes at another output length whose decode was fitted answers without tracing:
its decode basis is re-integrated over the new number of steps (:func:`~llm_perf_opt.tracer.derive.
derive_output_length`, exact when every counter is affine in the step; refused, and traced, otherwise).  Each
trace also traces the last decode step the context allows (:func:`context_new_tokens`), so its basis covers every
output length the door accepts when the counters stay on their lines that far.

On a miss at another batch, a trace of the same shapes that kept a batch basis answers without tracing
(:func:`~llm_perf_opt.tracer.batch_derive.derive_batch`: the language derived from three traced batches with every
expert called and a few small ones below them, exact from batch 1 to 1,024; for DeepSeek-OCR-2, whose vision encodes
every row in one call, every stage, from batch 2; refused, and traced, where it does not reproduce one of them).  A
basis costs six more language traces, so no run builds it in the foreground for its first batch of some shapes: that
run leaves a note, and the command line's ``analyze`` has a background process build it then
(:func:`build_batch_basis`, started by :mod:`llm_perf_opt.analysis.prepare`); a second batch traced before that is
done builds it itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from attrs import evolve

from llm_perf_opt.admission.limits import MAX_BATCH_SIZE, MAX_CONTEXT_TOKENS
from llm_perf_opt.analysis.model_source import source_provenance
from llm_perf_opt.sources.upstream.compat import installed_transformers
from llm_perf_opt.tracecache import CachedTrace, TraceCache, batch_parts, trace_key, trace_key_parts
from llm_perf_opt.tracer.batch_derive import BatchBasis, derive_batch
from llm_perf_opt.tracer.batch_fit import EXTRAPOLATE_FROM
from llm_perf_opt.tracer.derive import DecodeBasis, DeriveError, derive_output_length
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import RoutingModel

__all__ = [
    "TraceOutcome",
    "analysis_key_parts",
    "build_batch_basis",
    "built_model",
    "cached",
    "context_new_tokens",
    "entry_path",
    "first_basis_batch",
    "rows_ahead",
    "shapes_key",
    "shapes_seen",
    "stores_early",
    "traced",
]

TraceOutcome = tuple[TraceResult, dict[str, Any] | None, bool]
"""(trace, the source's provenance of the run or None, whether it came from the cache)."""


def analysis_key_parts(source: Any, workload: Any, *, attention: str, routing: RoutingModel) -> dict[str, Any]:
    """The cache key parts of the analysis trace of ``workload`` on ``source``."""
    extra = None
    if getattr(source, "kind", "builtin-v1") != "builtin-v1":
        snapshot = getattr(source, "snapshot", None)
        extra = {"fingerprint": getattr(snapshot, "fingerprint", None), "transformers": installed_transformers()}
    return trace_key_parts(source, workload, attention=attention, routing=routing, extra=extra)


def traced(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache | None,
    model: Any = None,
    keep_batch_basis: bool = True,
    whole_context: bool = True,
) -> TraceOutcome:
    """The trace of ``workload`` on ``source``: from ``cache`` when it holds the key or a decode basis of the same
    shapes, else traced (and stored with its basis) - on ``model`` when given (``source``'s tree, built for
    ``attention``: :func:`~llm_perf_opt.tracer.trace.build_model`), else on a tree built for it.  A second batch
    of the same shapes also keeps their batch basis, unless ``keep_batch_basis`` is False (another process is
    building it) or one was built for them and not kept before.  ``whole_context`` False: the decode basis stored
    with a trace covers its own output length only (the last decode step the context allows is not traced: 0.05 s of
    0.55 s at batch 64, left out where a command waits for this trace and the batch basis built next covers the
    rest)."""
    if cache is None:
        return (*_trace(source, workload, attention=attention, routing=routing, model=model)[:2], False)
    parts = analysis_key_parts(source, workload, attention=attention, routing=routing)
    served, found, in_batch = _from_cache(cache, parts, workload, routing)
    if served is not None:
        return served
    seen_again = in_batch is None and workload.batch_size >= EXTRAPOLATE_FROM and cache.batch_seen(parts)
    tries = seen_again and keep_batch_basis and not cache.basis_refused(parts)  # (a refused one costs seconds)
    batches = (1, MAX_BATCH_SIZE) if tries else None
    result, provenance, basis, batch_basis = _trace(
        source, workload, attention=attention, routing=routing, batches=batches, model=model, far=whole_context
    )
    entry = _keep(cache, parts, found, result, provenance, basis)
    if batch_basis is not None:
        cache.store_batch_basis(parts, entry, batch_basis)
    elif in_batch is None:  # (a kept basis says the shapes were seen)
        cache.mark_batch(parts, refused=batches is not None)
    return result, provenance, False


def cached(
    source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel, cache: TraceCache
) -> TraceOutcome | None:
    """What :func:`traced` would answer from ``cache`` without tracing (a hit, or derived from a decode or batch
    basis of the same shapes), or None."""
    parts = analysis_key_parts(source, workload, attention=attention, routing=routing)
    return _from_cache(cache, parts, workload, routing)[0]


def _from_cache(
    cache: TraceCache, parts: dict[str, Any], workload: Any, routing: RoutingModel
) -> tuple[TraceOutcome | None, Any, Any]:
    """(the outcome served from ``cache`` or None, the decode basis found, the batch basis found)."""
    hit = cache.load(trace_key(parts))
    if hit is not None:  # traced maybe for another page of the same tile grid: its workload line names this one
        return (evolve(hit.trace, workload=workload.describe()), hit.provenance, True), None, None
    found = cache.load_basis(parts)
    derived = _derived(found, workload)
    if derived is not None:
        cache.remember(parts, *derived)
        return (*derived, True), found, None
    in_batch = cache.load_batch_basis(parts)
    other_batch = _batch_derived(in_batch, workload, routing)
    if other_batch is not None:
        result, provenance, basis = other_batch
        _keep(cache, parts, found, result, provenance, basis)
        return (result, provenance, True), found, in_batch
    return None, found, in_batch


def entry_path(
    source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel, cache: TraceCache
) -> Path:
    """Where ``cache`` keeps the trace of exactly ``workload`` on ``source`` (it may not be there)."""
    return cache.path(trace_key(analysis_key_parts(source, workload, attention=attention, routing=routing)))


def shapes_key(source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel) -> str:
    """The key of ``workload``'s shapes at any batch and output length (its batch basis's key)."""
    return trace_key(batch_parts(analysis_key_parts(source, workload, attention=attention, routing=routing)))


def shapes_seen(
    source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel, cache: TraceCache
) -> bool:
    """Whether ``cache`` saw ``workload``'s shapes traced before, at any batch and output length (a note or a batch
    basis)."""
    return cache.batch_seen(analysis_key_parts(source, workload, attention=attention, routing=routing))


def build_batch_basis(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    cache: TraceCache,
    model: Any = None,
    first: int | None = None,
) -> int | None:
    """Trace ``workload``'s shapes with a batch basis (on ``model`` as in :func:`traced`) and store both: at the
    basis's first batch (``first`` when the caller has it from :func:`first_basis_batch`), whose traced language
    passes are then that point's, or at the workload's own batch when larger (then a point too, when inside the
    basis's range), and at :data:`EXTRAPOLATE_FROM` rows at least (the fewest the batched tracer extrapolates, which
    a basis is built with).  The basis is stored once its three points are traced (a batch change waiting for it is
    then derived, when in their range) and again with its low batches.  Returns the lowest batch the basis derives
    (one already stored counts), or None when none is kept (none would reproduce its own batches)."""
    stored = cache.load_batch_basis(analysis_key_parts(source, workload, attention=attention, routing=routing))
    if stored is not None:
        return stored[1].lowest
    model = model if model is not None else built_model(source, attention=attention)
    if first is None:
        first = first_basis_batch(source, workload, routing=routing, model=model)
    at = evolve(workload, batch_size=max(int(workload.batch_size), first or 0, EXTRAPOLATE_FROM))
    parts = analysis_key_parts(source, at, attention=attention, routing=routing)
    # from ``first`` on, the trace's own search for the first point stops at once (a linear scan of the routing
    # model's coverage: 1.9 s from batch 1 under skewed:8, whose basis starts at 1009)
    early = _store_early(cache, parts) if stores_early(source) else None
    result, provenance, basis, batch_basis = _trace(
        source, at, attention=attention, routing=routing, batches=(first or 1, MAX_BATCH_SIZE), model=model, early=early
    )
    entry = _keep(cache, parts, cache.load_basis(parts), result, provenance, basis)
    if batch_basis is None:
        cache.mark_batch(parts, refused=True)
        return None
    cache.store_batch_basis(parts, entry, batch_basis)
    return batch_basis.lowest


def stores_early(source: Any) -> bool:
    """Whether :func:`build_batch_basis` stores ``source``'s basis a first time, before its low batches (not for a
    source with provenance: the early store has no driver to take it from; DeepSeek-OCR-2's fused experts need the low
    batches to check their peak law anyway)."""
    return not callable(getattr(source, "provenance", None))


def _store_early(cache: TraceCache, parts: dict[str, Any]) -> Callable[[TraceResult, BatchBasis], None]:
    """What stores a trace (of a source without provenance) and its batch basis before the basis's low batches are
    traced."""

    def store(result: TraceResult, basis: BatchBasis) -> None:
        cache.store_batch_basis(parts, cache.remember(parts, result, None), basis)

    return store


def built_model(source: Any, *, attention: Literal["flash", "eager"]) -> Any:
    """``source``'s tree built for ``attention``: a ``model`` for :func:`traced` and :func:`build_batch_basis` in a
    process that traces one source several times (a v1 build is about 0.4 s)."""
    # lazy: the tracer imports torch (seconds); a cache hit never gets here
    from llm_perf_opt.tracer.trace import build_model

    return build_model(source, attention=attention)


def rows_ahead(
    source: Any, workload: Any, *, attention: Literal["flash", "eager"], routing: RoutingModel, model: Any
) -> None:
    """Trace the row stages of ``workload``'s page on ``model`` now, for the later traces of that page in this
    process (:func:`~llm_perf_opt.tracer.trace.trace_rows_ahead`, under
    :func:`~llm_perf_opt.tracer.sharing.remembering_rows`)."""
    # lazy: as above
    from llm_perf_opt.tracer.trace import trace_rows_ahead

    trace_rows_ahead(source, workload, model=model, attention=attention, routing=routing)


def first_basis_batch(source: Any, workload: Any, *, routing: RoutingModel, model: Any) -> int | None:
    """The lowest batch a batch basis of ``workload``'s shapes derives (from batch 1 to the most the door accepts),
    or None when it would keep none; ``model`` is ``source``'s tree (:func:`built_model`)."""
    # lazy: as above
    from llm_perf_opt.tracer import trace

    return trace.first_basis_batch(source, workload, routing=routing, model=model, batches=(1, MAX_BATCH_SIZE))


def _trace(
    source: Any,
    workload: Any,
    *,
    attention: Literal["flash", "eager"],
    routing: RoutingModel,
    batches: tuple[int, int] | None = None,
    model: Any = None,
    early: Callable[[TraceResult, BatchBasis], None] | None = None,
    far: bool = True,
) -> _Traced:
    """``workload`` traced on ``source`` (on ``model`` when given; with a decode basis up to the context, or with
    ``far`` False its own output length, and a batch basis over ``batches`` when given), and the source's provenance
    of the run."""
    # lazy: tracing needs torch (seconds to import); a cache hit never gets here
    from llm_perf_opt.tracer.trace import trace_with_bases

    result, driver, basis, batch_basis = trace_with_bases(
        source,
        workload,
        attention=attention,
        routing=routing,
        far_new_tokens=context_new_tokens(source.name, workload.seq_len) if far else None,
        batch_basis=batches,
        model=model,
        early_basis=early,
    )
    return result, source_provenance(source, driver), basis, batch_basis


_Traced = tuple[TraceResult, dict[str, Any] | None, DecodeBasis | None, BatchBasis | None]


def _keep(
    cache: TraceCache,
    parts: dict[str, Any],
    found: tuple[CachedTrace, DecodeBasis] | None,
    result: TraceResult,
    provenance: dict[str, Any] | None,
    basis: DecodeBasis | None,
) -> CachedTrace:
    """Store ``result`` and its decode ``basis`` (never in place of a wider one, ``found``); returns the entry."""
    entry = cache.remember(parts, result, provenance)
    if basis is not None and (found is None or basis.covers > found[1].covers):
        cache.store_basis(parts, entry, basis)
    return entry


def _batch_derived(
    found: tuple[CachedTrace, BatchBasis] | None, workload: Any, routing: RoutingModel
) -> tuple[TraceResult, dict[str, Any] | None, DecodeBasis | None] | None:
    """The trace at ``workload``'s batch (and output length) derived from ``found``, the cached batch basis of the
    same shapes at any batch and output length (and the trace it came from), with its decode basis; or None."""
    if found is None:
        return None
    entry, basis = found
    try:
        result, decode = derive_batch(
            basis, entry.trace, batch=workload.batch_size, routing=routing, workload=workload.describe()
        )
        if result.max_new_tokens != workload.max_new_tokens:  # then the output length, from its decode basis
            if decode is None:
                return None
            result = derive_output_length(
                result, decode, max_new_tokens=workload.max_new_tokens, workload=workload.describe()
            )
    except DeriveError:
        return None
    return result, entry.provenance, decode


def context_new_tokens(model: str, seq_len: int) -> int:
    """The most new tokens ``model``'s context leaves after a prompt of ``seq_len`` positions (``S + N - 1 <=``
    the context, as the door checks): the output length a decode basis is traced to cover."""
    limit = MAX_CONTEXT_TOKENS.get(model, MAX_CONTEXT_TOKENS["remote-v1"])
    return limit - seq_len + 1


def _derived(
    found: tuple[CachedTrace, DecodeBasis] | None, workload: Any
) -> tuple[TraceResult, dict[str, Any] | None] | None:
    """The trace at ``workload``'s output length derived from ``found``, the cached decode basis of the same shapes
    (and the trace it came from), or None."""
    if found is None:
        return None
    entry, basis = found
    try:
        result = derive_output_length(
            entry.trace, basis, max_new_tokens=workload.max_new_tokens, workload=workload.describe()
        )
    except DeriveError:
        return None
    return result, entry.provenance
