"""Model-agnostic trace driver: run the prefill pass and decode steps under the counter, group, fit, assemble.

A :class:`~llm_perf_opt.core.driving.Driver` (the model source provides it) says how to run one model: the prefill pass
and decode step ``i`` (inputs made outside the counter, so building them is not charged). :func:`trace_model` does the
rest and returns a :class:`TraceResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from attrs import frozen
from torch import nn

from llm_perf_opt.core.driving import Driver, PassInputs
from llm_perf_opt.tracer.categories import CATEGORIES
from llm_perf_opt.tracer.counter import counting
from llm_perf_opt.tracer.decode_fit import AffineFitError, fit_steps, integrate, pick_steps
from llm_perf_opt.tracer.grouping import StageGrouping, Structure, group_stage
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.lazy_dynamo import without_dynamo_import
from llm_perf_opt.tracer.ledger import build_ledger, uncalled_modules
from llm_perf_opt.tracer.nodedata import to_node_data
from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.tracer.result import DecodeMethod, TraceResult
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.tracer.state import TraceState
from llm_perf_opt.tracer.tree import STAGE_ORDER, StageMeta, build_nodes

__all__ = ["DecodeMode", "trace_model"]

DecodeMode = Literal["auto", "every-step"]


@frozen(kw_only=True)
class _Options:
    fuse_sdpa: bool
    verify_fast_meta: bool


def _run_pass(state: TraceState, stage: str, inputs: PassInputs, opts: _Options) -> RawTrace:
    state.begin_pass(stage)
    state.mark_kv(inputs.kv)
    state.track_inputs(inputs.live)
    with torch.no_grad(), counting(state, fuse_sdpa=opts.fuse_sdpa, verify_fast_meta=opts.verify_fast_meta):
        out = inputs.run()
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
        return {}, "none", "max_new_tokens = 1: no decode step"
    steps = pick_steps(n) if mode == "auto" else tuple(range(1, n + 1))
    raws = {i: _run_pass(state, "decode", driver.step(i), opts) for i in steps}
    if len(steps) == n:
        why = "requested" if mode == "every-step" else f"only {n} step(s)"
        return raws, "every-step", f"traced all {n} decode steps ({why})"
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


def trace_model(
    model: nn.Module,
    driver: Driver,
    *,
    rules: StageRules,
    attention: Literal["flash", "eager"],
    routing: str,
    model_desc: str,
    workload_desc: str,
    seq_len: int,
    max_new_tokens: int,
    decode: DecodeMode = "auto",
    verify_fast_meta: bool = False,
) -> TraceResult:
    """Trace ``model`` through ``driver``'s prefill and decode steps; see the package docs for the result."""
    with without_dynamo_import():
        return _trace_model(
            model,
            driver,
            rules=rules,
            attention=attention,
            routing=routing,
            model_desc=model_desc,
            workload_desc=workload_desc,
            seq_len=seq_len,
            max_new_tokens=max_new_tokens,
            decode=decode,
            verify_fast_meta=verify_fast_meta,
        )


def _trace_model(
    model: nn.Module,
    driver: Driver,
    *,
    rules: StageRules,
    attention: Literal["flash", "eager"],
    routing: str,
    model_desc: str,
    workload_desc: str,
    seq_len: int,
    max_new_tokens: int,
    decode: DecodeMode,
    verify_fast_meta: bool,
) -> TraceResult:
    opts = _Options(fuse_sdpa=attention == "flash", verify_fast_meta=verify_fast_meta)
    state = TraceState(model, rules, ModelIndex(model))
    index, structure = state.index, state.structure
    prefill_raw = _run_pass(state, "prefill", driver.prefill(), opts)
    step_raws, method, note = _decode(driver, state, opts, mode=decode)
    step_raws, method, note = _fit_or_fall_back(driver, state, opts, step_raws, method, note)
    groupings = _groupings(index, structure, [prefill_raw, *step_raws.values()])
    data = to_node_data(prefill_raw, groupings)
    step_data = {i: to_node_data(raw, groupings) for i, raw in step_raws.items()}
    if method == "affine-fit":
        data.add(fit_steps(step_data, driver.decode_steps))
    elif step_data:
        data.add(integrate(step_data))
    all_raws = [prefill_raw, *step_raws.values()]
    buckets: dict[str, tuple[str, str, str]] = {}
    for raw in all_raws:
        buckets.update(raw.op_buckets)
    counted = frozenset(op for op, (bucket, _, _) in buckets.items() if bucket == "counted")
    meta = StageMeta(decode_steps=driver.decode_steps, root_calls=1 + driver.decode_steps, counted_ops=counted)
    nodes = build_nodes(index, groupings, data, meta)
    ledger, unsupported = build_ledger(data, buckets)
    return TraceResult(
        model=model_desc,
        workload=workload_desc,
        seq_len=seq_len,
        max_new_tokens=max_new_tokens,
        attention=attention,
        routing=routing,
        decode_method=method,
        decode_note=note,
        nodes=nodes,
        op_ledger=ledger,
        unsupported=unsupported,
        uncalled_modules=uncalled_modules(index, all_raws),
        categories={c.category_id: c.match_classes for c in CATEGORIES},
    )
