"""Model-agnostic trace driver: run the prefill pass and decode steps under the counter, group, fit, assemble.

A :class:`~llm_perf_opt.core.driving.Driver` (the model source provides it) says how to run one model: the prefill pass
and decode step ``i`` (inputs made outside the counter, so building them is not charged). :func:`trace_model` does the
rest and returns a :class:`TraceResult`; :class:`TraceOptions` is what else decides a trace (one record for both
entry points).
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

import attrs
import torch
from attrs import field, frozen
from torch import nn

from llm_perf_opt.core.driving import Driver, PassInputs
from llm_perf_opt.tracer.anchor_stubs import AnchorStubs, StubMissError
from llm_perf_opt.tracer.batch_derive import (
    LAST,
    PREFILL,
    BatchBasis,
    BatchDeriveError,
    MoeLayer,
    answers_for,
    check_basis,
    derive_batch,
    fit_member_law,
    member_layout,
)
from llm_perf_opt.tracer.batch_fit import BATCH_POINTS, BatchFitError, extrapolate_stages, split_stages
from llm_perf_opt.tracer.categories import CATEGORIES
from llm_perf_opt.tracer.counter import counting
from llm_perf_opt.tracer.decode_fit import AffineFitError, fit_steps, integrate, pick_steps
from llm_perf_opt.tracer.derive import NO_DECODE_NOTE, DecodeBasis, decode_basis
from llm_perf_opt.tracer.grouping import StageGrouping, Structure, group_stage
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.lazy_dynamo import without_dynamo_import
from llm_perf_opt.tracer.lazy_shapes import without_symbolic_shapes_import
from llm_perf_opt.tracer.ledger import build_ledger, uncalled_modules
from llm_perf_opt.tracer.nodedata import NodeData, NodeKey, to_node_data
from llm_perf_opt.tracer.raw import RawTrace, call_shape
from llm_perf_opt.tracer.result import BatchMethod, DecodeMethod, TraceResult
from llm_perf_opt.tracer.sharing import RowMemo, at_boundary
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.tracer.state import PassCutError, TraceState
from llm_perf_opt.tracer.tree import STAGE_ORDER, StageMeta, build_nodes
from llm_perf_opt.workloads import RoutingModel

__all__ = [
    "BasisRequest",
    "DecodeMode",
    "TraceOptions",
    "Traced",
    "trace_model",
    "trace_model_batched_with_basis",
    "trace_model_with_basis",
    "trace_rows",
]

DecodeMode = Literal["auto", "every-step"]
Traced = tuple[TraceResult, DecodeBasis | None]
"""A trace and, when its decode was fitted, what re-integrates it over another output length
(:mod:`llm_perf_opt.tracer.derive`)."""


@frozen(kw_only=True)
class TraceOptions:
    """How to trace and how to label the result: everything :func:`trace_model` and
    :func:`trace_model_batched_with_basis` take besides the model and its driver."""

    rules: StageRules = field(metadata={"help": "stage anchors of the traced tree"})
    attention: Literal["flash", "eager"] = field(metadata={"help": "flash fuses SDPA into one op; eager counts it"})
    routing: str = field(metadata={"help": "the routing model's description (TraceResult.routing)"})
    model_desc: str = field(metadata={"help": "TraceResult.model"})
    workload_desc: str = field(metadata={"help": "TraceResult.workload"})
    seq_len: int = field(metadata={"help": "S, prompt positions of the prefill"})
    max_new_tokens: int = field(metadata={"help": "N, tokens generated (N - 1 decode steps)"})
    decode: DecodeMode = field(default="auto", metadata={"help": "auto: three steps fitted; every-step: all"})
    verify_fast_meta: bool = field(
        default=False, metadata={"help": "check every fast-path op output against torch's meta kernel (slow)"}
    )
    pure_modules: frozenset[type] = field(
        factory=frozenset,
        metadata={"help": "classes whose repeated calls are replayed from a tape (the same counts); empty: none"},
    )
    replay_calls: bool = field(
        default=True,
        metadata={"help": "replay repeated calls inside a module its code marks (core.repeats.repeatable)"},
    )


@frozen(kw_only=True)
class _Options:
    fuse_sdpa: bool
    verify_fast_meta: bool
    replay_calls: bool = True

    @classmethod
    def of(cls, options: TraceOptions) -> _Options:
        return cls(
            fuse_sdpa=options.attention == "flash",
            verify_fast_meta=options.verify_fast_meta,
            replay_calls=options.replay_calls,
        )


@contextlib.contextmanager
def _old_objects_left_alone() -> Iterator[None]:
    """For the block, the garbage collector leaves the objects alive at its start alone (``gc.freeze``; they are
    its again afterwards).  A trace allocates millions of small objects, and each full collection walked the model
    tree and every imported module too: 0.19 s of a 0.9 s trace at batch 1, 0.36 s of 1.3 s at batch 1,024; 0.04 and
    0.10 s with them left alone.  Where objects were frozen before (the background basis process, forked with its
    parent's objects frozen), they all stay frozen: ``gc.unfreeze`` would hand back the earlier ones too."""
    earlier = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not earlier:
            gc.unfreeze()


def _run_pass(state: TraceState, stage: str, inputs: PassInputs, opts: _Options, *, boundary: bool = True) -> RawTrace:
    if boundary:
        at_boundary()
    state.begin_pass(stage)
    state.mark_kv(inputs.kv)
    state.track_inputs(inputs.live)
    try:
        with (
            torch.no_grad(),
            counting(
                state, fuse_sdpa=opts.fuse_sdpa, verify_fast_meta=opts.verify_fast_meta, replay_calls=opts.replay_calls
            ),
        ):
            out = inputs.run()
    except PassCutError:
        state.close_open_frames()
    else:
        state.claim_kv_outputs(inputs.kv_filled(out))
    raw = state.end_pass()
    state.release_kv()
    return raw


def _language_prefill(
    state: TraceState, driver: Driver, opts: _Options, rules: StageRules
) -> tuple[RawTrace, RawTrace]:
    """The driver's language-only prefill as (its row-stage part, the rest): the ops a full pass runs between the
    row stages and the language model (an eager causal mask) are the last row stage's there, so they are here too
    (:attr:`TraceState.glue_stage`), and the rows traced with the pass cut before the language model count them."""
    state.glue_stage = "projector" if rules.projector else "vision"
    try:
        raw = _run_pass(state, "prefill", driver.language_prefill(), opts)  # type: ignore[attr-defined]
    finally:
        state.glue_stage = None
    return split_stages(raw, _ROW_STAGES)


def _groupings(index: ModelIndex, structure: Structure, raws: Sequence[RawTrace]) -> dict[str, StageGrouping]:
    merged = call_shape(raws)
    return {stage: group_stage(index, structure, merged, stage) for stage in STAGE_ORDER}


def _decode(
    driver: Driver, state: TraceState, opts: _Options, *, mode: DecodeMode
) -> tuple[dict[int, RawTrace], DecodeMethod, str]:
    n = driver.decode_steps
    if n == 0:
        return {}, "none", NO_DECODE_NOTE
    steps = pick_steps(n) if mode == "auto" else tuple(range(1, n + 1))
    raws = {i: _run_pass(state, "decode", driver.step(i), opts) for i in steps}
    if len(steps) == n:
        why = "requested" if mode == "every-step" else "too few to fit three"
        every = f"the {n} decode step" if n == 1 else f"all {n} decode steps"
        return raws, "every-step", f"traced {every} ({why})"
    return raws, "affine-fit", f"traced steps {', '.join(map(str, steps))} of {n}; every counter affine, integrated"


def _fit_or_fall_back(
    driver: Driver,
    state: TraceState,
    opts: _Options,
    prefill_raw: RawTrace,
    step_raws: dict[int, RawTrace],
    method: DecodeMethod,
    note: str,
) -> tuple[dict[int, RawTrace], DecodeMethod, str, _Grouped]:
    """Keep the three traced steps if every counter is affine in the step, else trace every step; with the
    groupings of the prefill and the kept steps (what the tree is built with) and, for kept steps, their node data
    and fit (which :func:`_assemble` then reuses)."""
    groupings = _groupings(state.index, state.structure, [prefill_raw, *step_raws.values()])
    if method != "affine-fit":
        return step_raws, method, note, _Grouped(groupings)
    step_data = {i: to_node_data(raw, groupings) for i, raw in step_raws.items()}
    try:
        fitted = fit_steps(step_data, driver.decode_steps)
    except AffineFitError as exc:
        n = driver.decode_steps
        every = {i: _run_pass(state, "decode", driver.step(i), opts) for i in range(1, n + 1)}
        groupings = _groupings(state.index, state.structure, [prefill_raw, *every.values()])
        return every, "every-step", f"affine check failed ({exc.where}); traced all {n} steps", _Grouped(groupings)
    return step_raws, method, note, _Grouped(groupings, step_data, fitted)


@frozen
class _Grouped:
    """The groupings a trace is built with; with a fitted decode, its steps' node data and their fit too."""

    groupings: dict[str, StageGrouping]
    step_data: dict[int, NodeData] | None = None
    fitted: NodeData | None = None


def _far_step(
    far: Driver | None, driver: Driver, state: TraceState, opts: _Options, method: DecodeMethod
) -> tuple[int, RawTrace] | None:
    """The last decode step of ``far`` (the same workload at more output tokens), traced when the decode was fitted
    and ``far`` goes further: the decode basis then covers every output length up to it."""
    if far is None or method != "affine-fit" or far.decode_steps <= driver.decode_steps:
        return None
    return far.decode_steps, _run_pass(state, "decode", far.step(far.decode_steps), opts)


def trace_model(model: nn.Module, driver: Driver, options: TraceOptions, *, far: Driver | None = None) -> Traced:
    """Trace ``model`` through ``driver``'s prefill and decode steps; see the package docs for the result.

    ``far`` drives the same workload at more output tokens (the most the context allows): its last decode step is
    traced too, so the decode basis covers every output length up to it when all four traced steps agree."""
    with without_dynamo_import(), without_symbolic_shapes_import(), _old_objects_left_alone():
        return _trace_model(model, driver, options, far=far)


def _trace_model(model: nn.Module, driver: Driver, options: TraceOptions, *, far: Driver | None) -> Traced:
    state = TraceState(model, options.rules, pure=options.pure_modules)
    return _traced_whole(state, driver, options, far=far, batch=None)[0]


def _traced_whole(
    state: TraceState, driver: Driver, options: TraceOptions, *, far: Driver | None, batch: int | None
) -> tuple[Traced, _TracedAt | None]:
    """Every pass of ``driver`` (which drives ``batch`` rows) traced on ``state`` and assembled; with the passes as a
    batch basis reads them (the whole prefill, no rows) when ``batch`` is given and the decode was fitted (else
    None)."""
    opts = _Options.of(options)
    prefill_raw = _run_pass(state, "prefill", driver.prefill(), opts)
    step_raws, method, note = _decode(driver, state, opts, mode=options.decode)
    step_raws, method, note, grouped = _fit_or_fall_back(driver, state, opts, prefill_raw, step_raws, method, note)
    far_raw = _far_step(far, driver, state, opts, method)
    traced = _assemble(
        state, driver, prefill_raw, step_raws, options, method=method, note=note, far_raw=far_raw, grouped=grouped
    )
    if batch is None or not _fitted(driver, method, step_raws):
        return traced, None
    at = _TracedAt(
        batch=batch,
        rows={},
        language=prefill_raw,
        steps=dict(step_raws),
        far=far_raw,
        groupings=grouped.groupings,
        result=traced[0],
    )
    return traced, at


def _fitted(driver: Driver, method: DecodeMethod, step_raws: Mapping[int, RawTrace]) -> bool:
    """Whether the traced decode steps are those a batch basis reads at every batch (fitted, or all of a short
    decode)."""
    return method == "affine-fit" or len(step_raws) <= len(pick_steps(driver.decode_steps))


def trace_model_with_basis(
    model: nn.Module,
    driver_for: Callable[[int], Driver],
    options: TraceOptions,
    *,
    batch: int,
    basis_request: BasisRequest,
    far: Driver | None = None,
) -> tuple[TraceResult, DecodeBasis | None, BatchBasis | None]:
    """:func:`trace_model` at ``batch`` rows (every row traced: for a source whose vision encodes every row in one
    call), and a batch basis of every stage: the whole prefill and the decode steps traced at the request's batches
    and kept when the basis reproduces them (:func:`trace_model_batched_with_basis` for the rest; None when the
    decode was not fitted, or the basis does not reproduce its batches)."""
    with without_dynamo_import(), without_symbolic_shapes_import(), _old_objects_left_alone():
        state = TraceState(model, options.rules, pure=options.pure_modules)
        (result, basis), at = _traced_whole(state, driver_for(batch), options, far=far, batch=batch)
        if at is None:
            return result, basis, None
        kept = _batch_basis(state, driver_for, _Options.of(options), basis_request, at, options.rules)
        return result, basis, kept


def _assemble(
    state: TraceState,
    driver: Driver,
    prefill_raw: RawTrace,
    step_raws: dict[int, RawTrace],
    options: TraceOptions,
    *,
    method: DecodeMethod,
    note: str,
    batch_method: BatchMethod = "traced",
    batch_note: str = "",
    far_raw: tuple[int, RawTrace] | None = None,
    grouped: _Grouped | None = None,
) -> Traced:
    """Group (unless ``grouped`` says how), fit the decode steps (unless it holds their fit), roll up the tree and
    the ledger of the traced passes; keep the basis of a fitted decode."""
    index, structure = state.index, state.structure
    if grouped is None:
        grouped = _Grouped(_groupings(index, structure, [prefill_raw, *step_raws.values()]))
    groupings = grouped.groupings
    prefill = to_node_data(prefill_raw, groupings)
    step_data = grouped.step_data
    if step_data is None:
        step_data = {i: to_node_data(raw, groupings) for i, raw in step_raws.items()}
    data = NodeData()
    data.add(prefill)
    if method == "affine-fit":
        data.add(grouped.fitted if grouped.fitted is not None else fit_steps(step_data, driver.decode_steps))
    elif step_data:
        data.add(integrate(step_data))
    all_raws = [prefill_raw, *step_raws.values()]
    buckets: dict[str, tuple[str, str, str]] = {}
    for raw in [*all_raws, *([far_raw[1]] if far_raw else [])]:
        buckets.update(raw.op_buckets)
    basis = None
    if method == "affine-fit":
        far_data = (far_raw[0], to_node_data(far_raw[1], groupings)) if far_raw else None
        basis = decode_basis(prefill, step_data, far_data, decode_steps=driver.decode_steps, buckets=buckets)
    counted = frozenset(op for op, (bucket, _, _) in buckets.items() if bucket == "counted")
    meta = StageMeta(decode_steps=driver.decode_steps, root_calls=1 + driver.decode_steps, counted_ops=counted)
    nodes = build_nodes(index, groupings, data, meta)
    ledger, unsupported = build_ledger(data, buckets)
    result = TraceResult(
        model=options.model_desc,
        workload=options.workload_desc,
        seq_len=options.seq_len,
        max_new_tokens=options.max_new_tokens,
        attention=options.attention,
        routing=options.routing,
        decode_method=method,
        decode_note=note,
        nodes=nodes,
        op_ledger=ledger,
        unsupported=unsupported,
        uncalled_modules=uncalled_modules(index, all_raws),
        categories={c.category_id: c.match_classes for c in CATEGORIES},
        batch_method=batch_method,
        batch_note=batch_note,
    )
    return result, basis


_ROW_STAGES = ("vision", "projector")
"""Stages whose cost grows with the rows of a batch: extrapolated by :func:`trace_model_batched_with_basis`."""


def trace_model_batched_with_basis(
    model: nn.Module,
    driver_for: Callable[[int], Driver],
    options: TraceOptions,
    *,
    batch: int,
    points: tuple[int, int, int] = BATCH_POINTS,
    far: Driver | None = None,
    basis_request: BasisRequest | None = None,
    rows_memo: RowMemo | None = None,
) -> tuple[TraceResult, DecodeBasis | None, BatchBasis | None]:
    """:func:`trace_model` at ``batch`` rows (``driver_for(b)`` drives ``b`` rows) without tracing every row
    (``far`` as there, at ``batch`` rows; the row stages of ``rows_memo`` when it holds them:
    :data:`~llm_perf_opt.tracer.sharing.RowMemo`).

    The prefill's vision and projector stages are traced at the three ``points`` (each pass stops when the language
    model starts) and extrapolated (:mod:`llm_perf_opt.tracer.batch_fit`); the prefill's language stages and the
    decode steps are traced at ``batch`` with the vision and projector anchors returning recorded empty outputs
    (:mod:`llm_perf_opt.tracer.anchor_stubs`).  A counter that is not affine, an anchor call no point saw, or an
    anchor call count that disagrees with the extrapolation falls back to a full trace, saying why in
    ``batch_note``.  With ``basis_request`` the language passes are also traced at its three batches (at ``batch``
    itself, when one of them, those just traced are read) and kept as a
    :class:`~llm_perf_opt.tracer.batch_derive.BatchBasis` (None when it does not reproduce them, or the trace at
    ``batch`` itself, exactly).
    """
    opts = _Options.of(options)
    with without_dynamo_import(), without_symbolic_shapes_import(), _old_objects_left_alone():
        state = TraceState(model, options.rules, pure=options.pure_modules)
        driver = driver_for(batch)
        try:
            prefill_raw, rows = _extrapolated_prefill(
                state, driver_for, driver, batch, points, opts, options.rules, rows_memo
            )
        except (BatchFitError, StubMissError) as exc:
            result, basis = _trace_model(model, driver, options, far=far)
            why = exc.where if isinstance(exc, BatchFitError) else str(exc)
            note = f"batch extrapolation refused ({why}); traced all {batch} rows"
            return attrs.evolve(result, batch_note=note), basis, None
        step_raws, method, note = _decode(driver, state, opts, mode=options.decode)
        step_raws, method, note, grouped = _fit_or_fall_back(driver, state, opts, prefill_raw, step_raws, method, note)
        groupings = grouped.groupings
        far_raw = _far_step(far, driver, state, opts, method)
        result, basis = _assemble(
            state,
            driver,
            prefill_raw,
            step_raws,
            options,
            method=method,
            note=note,
            batch_method="extrapolated",
            batch_note=_rows_note(points, batch),
            far_raw=far_raw,
            grouped=grouped,
        )
        fitted = _fitted(driver, method, step_raws)
        if basis_request is None or not fitted or not callable(getattr(driver, "language_prefill", None)):
            return result, basis, None
        traced_at = _TracedAt(
            batch=batch,
            rows=rows,
            language=split_stages(prefill_raw, _ROW_STAGES)[1],
            steps=dict(step_raws),
            far=far_raw,
            groupings=groupings,
            result=result,
        )
        return result, basis, _batch_basis(state, driver_for, opts, basis_request, traced_at, options.rules)


def _rows_note(points: tuple[int, int, int], batch: int) -> str:
    """How the rows of a batched trace at ``batch`` were counted: extrapolated from the ``points``, or (a point
    itself, where a process traced the points ahead) read from its own pass."""
    traced = ", ".join(map(str, points))
    if batch in points:
        return f"vision and projector traced at batch {traced} (batch {batch}'s read), language at batch {batch}"
    rows = f"vision and projector traced at batch {traced} and extrapolated to {batch}"
    return f"{rows}; language traced at batch {batch}"


def _row_stubs(state: TraceState, rules: StageRules) -> AnchorStubs:
    """The stubs of the row stages' anchors (vision and projector) of ``state``'s tree."""
    prefixes = rules.vision + rules.projector
    return AnchorStubs({path: module for path, module in state.index.entries if path in prefixes})


def _row_passes(
    state: TraceState,
    driver_for: Callable[[int], Driver],
    points: tuple[int, ...],
    opts: _Options,
    stubs: AnchorStubs,
) -> dict[int, RawTrace]:
    """The row stages traced at each of ``points`` (each prefill pass cut where the language model starts), with
    ``stubs`` recording the anchors' outputs."""
    rows: dict[int, RawTrace] = {}
    state.cut_after_vision = True
    try:
        with stubs.recording():
            for b in points:
                raw = _run_pass(state, "prefill", driver_for(b).prefill(), opts, boundary=False)
                rows[b], _ = split_stages(raw, _ROW_STAGES)
    finally:
        state.cut_after_vision = False
    return rows


def trace_rows(
    model: nn.Module,
    driver_for: Callable[[int], Driver],
    options: TraceOptions,
    memo: RowMemo,
    *,
    points: tuple[int, int, int] = BATCH_POINTS,
) -> None:
    """Trace the row stages at ``points`` into ``memo`` ahead of the batched traces that read them (the background
    basis process, while it waits for a batch change), as :func:`trace_model_batched_with_basis` would; nothing when
    ``memo`` holds them, or the driver has no language-only prefill (then the traces do not read a memo)."""
    if all(b in memo for b in points) or not callable(getattr(driver_for(points[0]), "language_prefill", None)):
        return
    with without_dynamo_import(), without_symbolic_shapes_import(), _old_objects_left_alone():
        state = TraceState(model, options.rules, pure=options.pure_modules)
        memo.update(_row_passes(state, driver_for, points, _Options.of(options), _row_stubs(state, options.rules)))


def _extrapolated_prefill(
    state: TraceState,
    driver_for: Callable[[int], Driver],
    driver: Driver,
    batch: int,
    points: tuple[int, int, int],
    opts: _Options,
    rules: StageRules,
    memo: RowMemo | None = None,
) -> tuple[RawTrace, dict[int, RawTrace]]:
    """The prefill at ``batch``: row stages extrapolated from ``points``, the rest traced - by the driver's
    ``language_prefill`` when it has one (the row stages skipped), else with the row anchors stubbed; and the row
    stages traced at each point (read from ``memo``, a :data:`~llm_perf_opt.tracer.sharing.RowMemo`, when it holds
    them and the language prefill runs on its own; then kept in it)."""
    stubs = _row_stubs(state, rules)
    language_prefill = getattr(driver, "language_prefill", None)
    remembered = callable(language_prefill) and memo is not None and all(b in memo for b in points)
    if remembered and memo is not None:
        rows = {b: memo[b] for b in points}
    else:
        rows = _row_passes(state, driver_for, points, opts, stubs)
        if memo is not None and callable(language_prefill):  # (a replayed pass needs its stubs recorded here)
            memo.update(rows)
    extrapolated = extrapolate_stages(rows, batch)
    if callable(language_prefill):  # the row stages do not run at all: no per-row glue either
        glue, kept = _language_prefill(state, driver, opts, rules)
        counted = rows[points[0]].table
        extra = next((key for key in glue.table if key not in counted), None)
        if extra is not None:
            raise BatchFitError(f"the language-only prefill at batch {batch} ran {extra}, which no row pass ran")
    else:
        with stubs.replaying():
            full = _run_pass(state, "prefill", driver.prefill(), opts, boundary=False)
        stubbed, kept = split_stages(full, _ROW_STAGES)
        for key, calls in stubbed.calls.items():
            if key[1] in stubs.modules and extrapolated.calls.get(key) != calls:
                raise BatchFitError(
                    f"{key[1]} ran {calls} times at batch {batch}, extrapolated {extrapolated.calls.get(key)}"
                )
    kept.merge(extrapolated)
    return kept, rows


# -- batch basis ------------------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class BasisRequest:
    """What :func:`trace_model_batched_with_basis` needs to keep a batch basis."""

    points: tuple[int, int, int] = field(metadata={"help": "p1 < p2 < p3, the batches the language is traced at"})
    moe: tuple[MoeLayer, ...] = field(metadata={"help": "the MoE layers (routing model's view)"})
    routing: RoutingModel = field(metadata={"help": "the routing model the trace uses"})
    seq_len: int = field(metadata={"help": "S, prompt positions per row of the prefill"})
    far_for: Callable[[int], Driver | None] = field(metadata={"help": "the far decode step's driver at a batch"})
    low: tuple[int, ...] = field(default=(), metadata={"help": "batches below p1 traced too (the basis's low points)"})
    early: Callable[[TraceResult, BatchBasis], None] | None = field(
        default=None, metadata={"help": "gets the trace and its basis without the low points, before they are traced"}
    )


@frozen(kw_only=True)
class _TracedAt:
    """The trace at the requested batch, as the basis needs it."""

    batch: int
    rows: dict[int, RawTrace]
    language: RawTrace
    """the prefill's language stages (what ``language_prefill`` traces at ``batch``); the whole prefill when there
    are no ``rows`` (a basis of every stage)"""
    steps: dict[int, RawTrace]
    far: tuple[int, RawTrace] | None
    groupings: dict[str, StageGrouping]
    result: TraceResult


def _batch_basis(
    state: TraceState,
    driver_for: Callable[[int], Driver],
    opts: _Options,
    request: BasisRequest,
    at: _TracedAt,
    rules: StageRules,
) -> BatchBasis | None:
    """Trace the language passes at the request's batches and keep them as a basis, if it reproduces them (and the
    trace at the requested batch, when that lies in its range) exactly; then at its low batches, and keep those too
    when the basis with them reproduces them (without batch 1 when only it is off the laws: eager attention runs one
    more view there); else the basis without them, or None.  The basis without them goes to ``request.early`` first,
    when given (a batch in its range need not wait for the low batches)."""
    reduced = _Reduced(request, at.groupings)

    def read(point: int) -> bool:
        """Trace the language passes at batch ``point`` into ``reduced`` (read those of ``at`` when it is that
        batch); False when the far decode step has no driver there."""
        if point == at.batch:  # traced already: the same passes
            _reuse(reduced, at)
            return True
        driver = driver_for(point)
        if at.rows:  # the row stages are extrapolated from their own traces: the language stages alone
            reduced.add(point, PREFILL, _language_prefill(state, driver, opts, rules)[1])
        else:
            reduced.add(point, PREFILL, _run_pass(state, "prefill", driver.prefill(), opts))
        for i in at.steps:
            reduced.add(point, f"step:{i}", _run_pass(state, "decode", driver.step(i), opts))
        if at.far is not None:
            far = request.far_for(point)
            if far is None or far.decode_steps != at.far[0]:
                return False
            reduced.add(point, f"step:{at.far[0]}", _run_pass(state, "decode", far.step(at.far[0]), opts))
        return True

    if not all(read(p) for p in request.points):
        return None
    full = _checked_basis(reduced, at, low=())
    if not request.low:
        return full
    if full is not None and request.early is not None:
        request.early(at.result, full)
    if not all(read(q) for q in request.low):
        return full
    lows = (request.low, request.low[1:]) if len(request.low) > 1 else (request.low,)
    return next((b for low in lows if (b := _checked_basis(reduced, at, low=low)) is not None), full)


def _checked_basis(reduced: _Reduced, at: _TracedAt, *, low: tuple[int, ...]) -> BatchBasis | None:
    """The basis of what ``reduced`` read at its points and the ``low`` ones, when it reproduces them and the trace
    ``at`` (when in its range); else None."""
    request = reduced.request
    try:
        basis = reduced.basis(at, low=low)
        check_basis(basis, routing=request.routing)
        if not answers_for(basis, request.routing, at.batch):  # (nothing to compare)
            return basis
        derived, _ = derive_batch(
            basis, at.result, batch=at.batch, routing=request.routing, workload=at.result.workload
        )
    except (BatchDeriveError, KeyError):
        return None
    same = (derived.nodes, derived.op_ledger, derived.unsupported) == (
        at.result.nodes,
        at.result.op_ledger,
        at.result.unsupported,
    )
    return basis if same else None


def _reuse(reduced: _Reduced, at: _TracedAt) -> None:
    """The language passes of the trace at the requested batch, read as the basis's point at that batch."""
    reduced.add(at.batch, PREFILL, at.language)
    for i, raw in at.steps.items():
        reduced.add(at.batch, f"step:{i}", raw)
    if at.far is not None:
        reduced.add(at.batch, f"step:{at.far[0]}", at.far[1])


_EXPERT = re.compile(r"^(?P<moe>.+)\.experts(?:\.(?P<e>\d+))?(?:\..+)?$")
"""``<moe>.experts`` and what lies under it: ``<moe>.experts.<e>...`` for a list of experts (v1)."""


class _Reduced:
    """The language passes of a batch basis as they are traced: node data, routed experts' peaks, op buckets (the
    raw passes are dropped as soon as they are read)."""

    def __init__(self, request: BasisRequest, groupings: dict[str, StageGrouping]) -> None:
        self.request = request
        self.groupings = groupings
        self.position = {layer.path: pos for pos, layer in enumerate(request.moe)}
        self.passes: dict[int, dict[str, NodeData]] = defaultdict(dict)
        self.members: dict[NodeKey, set[tuple[int, int]]] = defaultdict(set)
        self.observations: dict[tuple[str, NodeKey], list[tuple[int, int, int, int]]] = defaultdict(list)
        self.buckets: dict[str, tuple[str, str, str]] = {}
        self.moe_of: dict[NodeKey, set[int]] = defaultdict(set)
        self._under: dict[str, tuple[int, ...]] = {}

    def tokens(self, name: str) -> int:
        return self.request.seq_len if name == PREFILL else 1

    def add(self, point: int, name: str, raw: RawTrace) -> None:
        """Read pass ``name`` at batch ``point`` (KeyError: a path the trace at the requested batch did not group)."""
        request = self.request
        layouts = [member_layout(layer, request.routing, point * self.tokens(name)) for layer in request.moe]
        for (stage, path), peak in raw.peaks.items():
            member = self.member(path)
            if member is None:
                continue
            pos, e = member
            nk = (stage, self.groupings[stage].pattern(path))
            self.members[nk].add((pos, e))
            prefix, size = layouts[pos][e]
            self.observations[(name, nk)].append((point, prefix, size, peak))
        self.passes[point][name] = to_node_data(raw, self.groupings)
        self.buckets.update(raw.op_buckets)
        for stage, path in {(k[0], k[1]) for k in raw.table} | raw.calls.keys():
            layers = self.layers_under(path)
            if layers:
                self.moe_of[(stage, self.groupings[stage].pattern(path))].update(layers)

    def member(self, path: str) -> tuple[int, int] | None:
        """(MoE layer position, expert) of a routed expert's path (or a submodule's); of a fused layer, a submodule
        of its experts module (the one module calls every expert: its peak is its last call's, :data:`LAST`)."""
        match = _EXPERT.match(path)
        pos = None if match is None else self.position.get(match["moe"])
        if match is None or pos is None:
            return None
        if self.request.moe[pos].fused:
            return pos, LAST
        return None if match["e"] is None else (pos, int(match["e"]))

    def layers_under(self, path: str) -> tuple[int, ...]:
        """The MoE layers (positions) that ``path`` is or lies under."""
        found = self._under.get(path)
        if found is None:
            found = self._under[path] = tuple(
                pos for moe, pos in self.position.items() if path == moe or path.startswith(f"{moe}.")
            )
        return found

    def basis(self, at: _TracedAt, *, low: tuple[int, ...]) -> BatchBasis:
        """The basis with the ``low`` points (some of the request's) (BatchDeriveError: a routed expert's peaks fit
        no law; KeyError: an ungrouped path)."""
        points = (*low, *self.request.points)
        laws = {}
        for key, obs in self.observations.items():
            fused = any(e == LAST for _, e in self.members[key[1]])
            law = fit_member_law([o for o in obs if o[0] in points], fused=fused)
            if law is None:
                raise BatchDeriveError(f"no peak law fits the routed experts of {key}")
            laws[key] = law
        buckets = dict(self.buckets)
        for raw in at.rows.values():
            buckets.update(raw.op_buckets)
        row_keys = {(k[0], k[1]) for raw in at.rows.values() for k in (*raw.table, *raw.calls, *raw.peaks)}
        first = self.passes[self.request.points[0]]
        return BatchBasis(
            points=self.request.points,
            passes={p: self.passes[p] for p in points},
            tokens={name: self.tokens(name) for name in first},
            moe=self.request.moe,
            members={nk: tuple(sorted(m)) for nk, m in self.members.items()},
            laws=laws,
            rows=at.rows,
            row_patterns={key: self.groupings[key[0]].pattern(key[1]) for key in sorted(row_keys)},
            decode_steps=at.result.max_new_tokens - 1,
            far=at.far[0] if at.far is not None else None,
            buckets=buckets,
            low=low,
            moe_of={nk: tuple(sorted(layers)) for nk, layers in self.moe_of.items()},
        )
