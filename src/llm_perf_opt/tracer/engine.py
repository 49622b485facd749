"""Model-agnostic trace driver: run the prefill pass and decode steps under the counter, group, fit, assemble.

A :class:`~llm_perf_opt.core.driving.Driver` (the model source provides it) says how to run one model: the prefill pass
and decode step ``i`` (inputs made outside the counter, so building them is not charged). :func:`trace_model` does the
rest and returns a :class:`TraceResult`; :class:`TraceOptions` is what else decides a trace (one record for both
entry points).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import attrs
import torch
from attrs import field, frozen
from torch import nn

from llm_perf_opt.core.driving import Driver, PassInputs
from llm_perf_opt.tracer.anchor_stubs import AnchorStubs, StubMissError
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
from llm_perf_opt.tracer.nodedata import NodeData, to_node_data
from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.tracer.result import BatchMethod, DecodeMethod, TraceResult
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.tracer.state import PassCutError, TraceState
from llm_perf_opt.tracer.tree import STAGE_ORDER, StageMeta, build_nodes

__all__ = ["DecodeMode", "TraceOptions", "Traced", "trace_model", "trace_model_batched"]

DecodeMode = Literal["auto", "every-step"]
Traced = tuple[TraceResult, DecodeBasis | None]
"""A trace and, when its decode was fitted, what re-integrates it over another output length
(:mod:`llm_perf_opt.tracer.derive`)."""


@frozen(kw_only=True)
class TraceOptions:
    """How to trace and how to label the result: everything :func:`trace_model` and :func:`trace_model_batched`
    take besides the model and its driver."""

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


@frozen(kw_only=True)
class _Options:
    fuse_sdpa: bool
    verify_fast_meta: bool

    @classmethod
    def of(cls, options: TraceOptions) -> _Options:
        return cls(fuse_sdpa=options.attention == "flash", verify_fast_meta=options.verify_fast_meta)


def _run_pass(state: TraceState, stage: str, inputs: PassInputs, opts: _Options) -> RawTrace:
    state.begin_pass(stage)
    state.mark_kv(inputs.kv)
    state.track_inputs(inputs.live)
    try:
        with torch.no_grad(), counting(state, fuse_sdpa=opts.fuse_sdpa, verify_fast_meta=opts.verify_fast_meta):
            out = inputs.run()
    except PassCutError:
        state.close_open_frames()
    else:
        state.claim_kv_outputs(inputs.kv_filled(out))
    raw = state.end_pass()
    state.release_kv()
    return raw


def _groupings(index: ModelIndex, structure: Structure, raws: Sequence[RawTrace]) -> dict[str, StageGrouping]:
    merged = RawTrace()
    for raw in raws:
        merged.merge(raw)
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
    step_raws: dict[int, RawTrace],
    method: DecodeMethod,
    note: str,
) -> tuple[dict[int, RawTrace], DecodeMethod, str]:
    """Keep the three traced steps if every counter is affine in the step, else trace every step."""
    if method != "affine-fit":
        return step_raws, method, note
    groupings = _groupings(state.index, state.structure, list(step_raws.values()))
    try:
        fit_steps({i: to_node_data(raw, groupings) for i, raw in step_raws.items()}, driver.decode_steps)
    except AffineFitError as exc:
        n = driver.decode_steps
        every = {i: _run_pass(state, "decode", driver.step(i), opts) for i in range(1, n + 1)}
        return every, "every-step", f"affine check failed ({exc.where}); traced all {n} steps"
    return step_raws, method, note


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
    with without_dynamo_import(), without_symbolic_shapes_import():
        return _trace_model(model, driver, options, far=far)


def _trace_model(model: nn.Module, driver: Driver, options: TraceOptions, *, far: Driver | None) -> Traced:
    opts = _Options.of(options)
    state = TraceState(model, options.rules, ModelIndex(model), pure=options.pure_modules)
    prefill_raw = _run_pass(state, "prefill", driver.prefill(), opts)
    step_raws, method, note = _decode(driver, state, opts, mode=options.decode)
    step_raws, method, note = _fit_or_fall_back(driver, state, opts, step_raws, method, note)
    far_raw = _far_step(far, driver, state, opts, method)
    return _assemble(state, driver, prefill_raw, step_raws, options, method=method, note=note, far_raw=far_raw)


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
) -> Traced:
    """Group, fit the decode steps, roll up the tree and the ledger of the traced passes; keep the basis of a fitted
    decode."""
    index, structure = state.index, state.structure
    groupings = _groupings(index, structure, [prefill_raw, *step_raws.values()])
    prefill = to_node_data(prefill_raw, groupings)
    step_data = {i: to_node_data(raw, groupings) for i, raw in step_raws.items()}
    data = NodeData()
    data.add(prefill)
    if method == "affine-fit":
        data.add(fit_steps(step_data, driver.decode_steps))
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
"""Stages whose cost grows with the rows of a batch: extrapolated by :func:`trace_model_batched`."""


def trace_model_batched(
    model: nn.Module,
    driver_for: Callable[[int], Driver],
    options: TraceOptions,
    *,
    batch: int,
    points: tuple[int, int, int] = BATCH_POINTS,
    far: Driver | None = None,
) -> Traced:
    """:func:`trace_model` at ``batch`` rows (``driver_for(b)`` drives ``b`` rows) without tracing every row
    (``far`` as there, at ``batch`` rows).

    The prefill's vision and projector stages are traced at the three ``points`` (each pass stops when the language
    model starts) and extrapolated (:mod:`llm_perf_opt.tracer.batch_fit`); the prefill's language stages and the
    decode steps are traced at ``batch`` with the vision and projector anchors returning recorded empty outputs
    (:mod:`llm_perf_opt.tracer.anchor_stubs`).  A counter that is not affine, an anchor call no point saw, or an
    anchor call count that disagrees with the extrapolation falls back to a full trace, saying why in
    ``batch_note``.
    """
    opts = _Options.of(options)
    with without_dynamo_import(), without_symbolic_shapes_import():
        state = TraceState(model, options.rules, ModelIndex(model), pure=options.pure_modules)
        driver = driver_for(batch)
        try:
            prefill_raw = _extrapolated_prefill(state, driver_for, driver, batch, points, opts, options.rules)
        except (BatchFitError, StubMissError) as exc:
            result, basis = _trace_model(model, driver, options, far=far)
            why = exc.where if isinstance(exc, BatchFitError) else str(exc)
            note = f"batch extrapolation refused ({why}); traced all {batch} rows"
            return attrs.evolve(result, batch_note=note), basis
        step_raws, method, note = _decode(driver, state, opts, mode=options.decode)
        step_raws, method, note = _fit_or_fall_back(driver, state, opts, step_raws, method, note)
        far_raw = _far_step(far, driver, state, opts, method)
        traced = ", ".join(map(str, points))
        return _assemble(
            state,
            driver,
            prefill_raw,
            step_raws,
            options,
            method=method,
            note=note,
            batch_method="extrapolated",
            batch_note=f"vision and projector traced at batch {traced} and extrapolated to {batch}; "
            f"language traced at batch {batch}",
            far_raw=far_raw,
        )


def _extrapolated_prefill(
    state: TraceState,
    driver_for: Callable[[int], Driver],
    driver: Driver,
    batch: int,
    points: tuple[int, int, int],
    opts: _Options,
    rules: StageRules,
) -> RawTrace:
    """The prefill at ``batch``: row stages extrapolated from ``points``, the rest traced - by the driver's
    ``language_prefill`` when it has one (the row stages skipped), else with the row anchors stubbed."""
    prefixes = rules.vision + rules.projector
    anchors = {path: module for path, module in state.index.entries if path in prefixes}
    stubs = AnchorStubs(anchors)
    rows: dict[int, RawTrace] = {}
    state.cut_after_vision = True
    try:
        with stubs.recording():
            for b in points:
                rows[b], _ = split_stages(_run_pass(state, "prefill", driver_for(b).prefill(), opts), _ROW_STAGES)
    finally:
        state.cut_after_vision = False
    extrapolated = extrapolate_stages(rows, batch)
    language_prefill = getattr(driver, "language_prefill", None)
    if callable(language_prefill):  # the row stages do not run at all: no per-row glue either
        stubbed, kept = split_stages(_run_pass(state, "prefill", language_prefill(), opts), _ROW_STAGES)
        if stubbed.table or stubbed.calls:
            raise BatchFitError(f"the language-only prefill at batch {batch} ran row-stage ops")
    else:
        with stubs.replaying():
            full = _run_pass(state, "prefill", driver.prefill(), opts)
        stubbed, kept = split_stages(full, _ROW_STAGES)
        for key, calls in stubbed.calls.items():
            if key[1] in anchors and extrapolated.calls.get(key) != calls:
                raise BatchFitError(
                    f"{key[1]} ran {calls} times at batch {batch}, extrapolated {extrapolated.calls.get(key)}"
                )
    kept.merge(extrapolated)
    return kept
