"""Top level: :func:`trace_workload` traces a model source on a workload and returns a :class:`TraceResult`.

The source is any :class:`~llm_perf_opt.core.driving.TraceableSource` (resolve a name with
``llm_perf_opt.sources.resolve_model_source``): it builds the tree and provides the driver; this module runs it.
``attention="flash"`` builds the model with ``attn_implementation="sdpa"`` and records every
``F.scaled_dot_product_attention`` call as one fused op with causal-effective executed FLOPs;
``attention="eager"`` builds the eager implementation (explicit matmuls, additive mask, fp32 softmax) and lets
SDPA calls elsewhere (SAM, CLIP) run their math decomposition, counted op by op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import attrs
from torch import nn

from llm_perf_opt.core.driving import Driver, TraceableSource
from llm_perf_opt.errors import UserError
from llm_perf_opt.tracer.batch_derive import BatchBasis, MoeLayer, called_experts, choose_points, low_points
from llm_perf_opt.tracer.batch_fit import BATCH_POINTS, EXTRAPOLATE_FROM
from llm_perf_opt.tracer.derive import DecodeBasis
from llm_perf_opt.tracer.engine import (
    BasisRequest,
    DecodeMode,
    TraceOptions,
    trace_model,
    trace_model_batched_with_basis,
    trace_model_with_basis,
    trace_rows,
)
from llm_perf_opt.tracer.lazy_metas import python_metas_on_demand
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.sharing import RowMemo, rows_memo
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.workloads import RoutingModel, Workload, preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = [
    "DEEPSEEK_OCR_STAGES",
    "EXTRAPOLATE_FROM",
    "ONE_CALL_NOTE",
    "BatchMode",
    "build_model",
    "first_basis_batch",
    "moe_layers",
    "stage_rules",
    "trace_rows_ahead",
    "trace_with_bases",
    "trace_with_basis",
    "trace_with_driver",
    "trace_workload",
]

DEEPSEEK_OCR_STAGES = StageRules()

BatchMode = Literal["auto", "extrapolate", "every-row"]


def trace_workload(
    model_source: TraceableSource,
    workload: Workload | Ocr2Workload | str,
    *,
    attention: Literal["flash", "eager"] = "flash",
    routing: RoutingModel | None = None,
    decode: DecodeMode = "auto",
    model: nn.Module | None = None,
    verify_fast_meta: bool = False,
    batch: BatchMode = "auto",
) -> TraceResult:
    """Trace ``workload`` (a Workload, an Ocr2Workload or a preset id) on ``model_source``.

    ``model`` may pass an already built tree (meta, built with the implementation ``attention`` needs) to skip
    building it.  ``decode="every-step"`` traces every decode step instead of fitting three.
    ``verify_fast_meta`` checks every fast-path op output against torch's meta kernel (slow; for tests).
    ``batch="extrapolate"`` traces the vision stages at batch 1, 2, 3 and extrapolates them exactly (see
    :func:`~llm_perf_opt.tracer.engine.trace_model_batched_with_basis`), ``"every-row"`` traces every row, ``"auto"``
    extrapolates from :data:`EXTRAPOLATE_FROM` rows on.
    The source's driver (``make_driver``) runs the passes; its stage anchors (``stage_anchors`` when it has them,
    v1's otherwise) assign stages.  See :func:`trace_with_basis` for the driver and the decode basis afterwards.
    """
    result, _, _ = trace_with_basis(
        model_source,
        workload,
        attention=attention,
        routing=routing,
        decode=decode,
        model=model,
        verify_fast_meta=verify_fast_meta,
        batch=batch,
    )
    return result


def trace_with_driver(
    model_source: TraceableSource, workload: Workload | Ocr2Workload | str, **options: Any
) -> tuple[TraceResult, Driver]:
    """:func:`trace_workload` (the same keyword ``options``), also returning the driver that ran (it counts what a
    source's adapters did, which ``source.provenance(driver)`` reports)."""
    result, driver, _ = trace_with_basis(model_source, workload, **options)
    return result, driver


def trace_with_basis(
    model_source: TraceableSource, workload: Workload | Ocr2Workload | str, **options: Any
) -> tuple[TraceResult, Driver, DecodeBasis | None]:
    """:func:`trace_with_bases` without a batch basis."""
    result, driver, basis, _ = trace_with_bases(model_source, workload, **options)
    return result, driver, basis


@python_metas_on_demand
def trace_with_bases(
    model_source: TraceableSource,
    workload: Workload | Ocr2Workload | str,
    *,
    attention: Literal["flash", "eager"] = "flash",
    routing: RoutingModel | None = None,
    decode: DecodeMode = "auto",
    model: nn.Module | None = None,
    verify_fast_meta: bool = False,
    batch: BatchMode = "auto",
    far_new_tokens: int | None = None,
    replay: bool = True,
    batch_basis: tuple[int, int] | None = None,
    early_basis: Callable[[TraceResult, BatchBasis], None] | None = None,
) -> tuple[TraceResult, Driver, DecodeBasis | None, BatchBasis | None]:
    """:func:`trace_with_driver`, also returning the decode basis of a fitted decode (None otherwise): what
    :func:`~llm_perf_opt.tracer.derive.derive_output_length` re-integrates over another output length.
    ``far_new_tokens`` (more than the workload's, e.g. the most the context allows) also traces the last decode step
    of that many new tokens, so the basis covers every output length up to it (one more decode step traced).
    ``early_basis`` gets the trace and its batch basis before the basis's low batches are traced
    (:class:`~llm_perf_opt.tracer.engine.BasisRequest`).
    Where torch's Python meta kernels were deferred and the build or trace needs one, it runs again with them
    (:func:`~llm_perf_opt.tracer.lazy_metas.with_python_metas_on_demand`)."""
    source = model_source
    work = preset_workload(workload) if isinstance(workload, str) else workload
    route = routing if routing is not None else RoutingModel.balanced()
    if model is None:
        model = build_model(source, attention=attention)
    driver = source.make_driver(model, work, route)
    options = _options(
        source, model, work, route, driver, attention=attention, decode=decode, verify=verify_fast_meta, replay=replay
    )
    far = _far_driver(source, model, work, route, far_new_tokens)
    rows = work.batch_size
    built = model

    def driver_for(b: int) -> Driver:
        return driver if b == rows else source.make_driver(built, attrs.evolve(work, batch_size=b), route)

    memo = rows_memo(model, work, source=source.name, attention=attention, verify=verify_fast_meta, replay=replay)
    extrapolates = _extrapolates(source, batch, rows) or _rows_remembered(source, batch, memo, driver)
    one_call = batch == "auto" and getattr(source, "rows_in_one_call", False)  # (then a basis of every stage)
    request = (
        _basis_request(source, model, work, route, far_new_tokens, batch_basis, options, early_basis)
        if batch_basis and (extrapolates or one_call)
        else None
    )
    if extrapolates:
        result, basis, kept = trace_model_batched_with_basis(
            model, driver_for, options, batch=rows, far=far, basis_request=request, rows_memo=memo
        )
        return result, driver, basis, kept
    if request is None:
        result, basis = trace_model(model, driver, options, far=far)
        kept = None
    else:
        result, basis, kept = trace_model_with_basis(
            model, driver_for, options, batch=rows, far=far, basis_request=request
        )
    if batch == "auto" and rows >= EXTRAPOLATE_FROM:  # (then the source runs its rows in one call)
        result = attrs.evolve(result, batch_note=ONE_CALL_NOTE)
    return result, driver, basis, kept


def _options(
    source: TraceableSource,
    model: nn.Module,
    work: Workload | Ocr2Workload,
    route: RoutingModel,
    driver: Driver,
    *,
    attention: Literal["flash", "eager"],
    decode: DecodeMode = "auto",
    verify: bool = False,
    replay: bool = True,
) -> TraceOptions:
    """How a trace of ``work`` on ``model`` runs (``verify``: check the fast path against torch's meta kernels;
    ``replay``: replay the source's pure modules) and is labelled."""
    describe: Any = getattr(driver, "describe", None)
    return TraceOptions(
        rules=stage_rules(source),
        attention=attention,
        routing=route.describe(),
        model_desc=f"{source.name} ({type(model).__name__})",
        workload_desc=str(describe() if callable(describe) else work.describe()),
        seq_len=driver.seq_len,
        max_new_tokens=driver.max_new_tokens,
        decode=decode,
        verify_fast_meta=verify,
        pure_modules=_pure_modules(source) if replay else frozenset(),
        replay_calls=replay,
    )


@python_metas_on_demand
def trace_rows_ahead(
    model_source: TraceableSource,
    workload: Workload | Ocr2Workload,
    *,
    model: nn.Module,
    attention: Literal["flash", "eager"] = "flash",
    routing: RoutingModel | None = None,
) -> None:
    """Under :func:`~llm_perf_opt.tracer.sharing.remembering_rows`: trace the row stages of ``workload``'s page on
    ``model`` now, into the memo the batched traces of that page read later (:func:`trace_with_bases` with its
    defaults); nothing outside it, or for a source whose rows are not extrapolated (DeepSeek-OCR-2)."""
    source = model_source
    route = routing if routing is not None else RoutingModel.balanced()
    at = attrs.evolve(workload, batch_size=max(workload.batch_size, EXTRAPOLATE_FROM))
    memo = rows_memo(model, at, source=source.name, attention=attention, verify=False, replay=True)
    if memo is None or not _extrapolates(source, "auto", at.batch_size):
        return
    driver = source.make_driver(model, at, route)
    options = _options(source, model, at, route, driver, attention=attention)
    trace_rows(model, lambda b: source.make_driver(model, attrs.evolve(at, batch_size=b), route), options, memo)


ONE_CALL_NOTE = (
    "every row traced at once: the source's vision encodes all rows in one call, so a trace costs about the same at "
    "any batch"
)
"""The ``batch_note`` of an ``auto`` trace at a large batch of a source with ``rows_in_one_call``."""


def _extrapolates(source: TraceableSource, batch: BatchMode, rows: int) -> bool:
    """Whether the vision stages of ``rows`` rows are extrapolated from three traced batches: asked for, or
    ``auto`` from :data:`EXTRAPOLATE_FROM` rows on - unless ``source`` runs every row in one call
    (``rows_in_one_call``), whose trace costs no more with the batch."""
    if batch != "auto":
        return batch == "extrapolate"
    return rows >= EXTRAPOLATE_FROM and not getattr(source, "rows_in_one_call", False)


def _rows_remembered(source: TraceableSource, batch: BatchMode, memo: RowMemo | None, driver: Driver) -> bool:
    """Whether the row stages of every batch point are in ``memo`` (traced ahead in this process), so a batch below
    :data:`EXTRAPOLATE_FROM` is read from them too: its language traced alone (0.1-0.15 s less than a trace of its
    rows at the standard page), and the same counts (the points hold its rows up to batch 3, an exact affine
    extrapolation beyond)."""
    if batch != "auto" or memo is None or getattr(source, "rows_in_one_call", False):
        return False
    return all(b in memo for b in BATCH_POINTS) and callable(getattr(driver, "language_prefill", None))


@python_metas_on_demand
def build_model(model_source: TraceableSource, *, attention: Literal["flash", "eager"] = "flash") -> nn.Module:
    """``model_source``'s tree built on meta with the implementation ``attention`` needs (``sdpa`` for flash): what
    :func:`trace_with_bases` builds when given no ``model``, for a process that traces one source many times."""
    return cast(nn.Module, model_source.build(attn_implementation="sdpa" if attention == "flash" else "eager"))


def _basis_request(
    source: TraceableSource,
    model: nn.Module,
    work: Any,
    route: RoutingModel,
    far_new_tokens: int | None,
    batches: tuple[int, int],
    options: TraceOptions,
    early: Callable[[TraceResult, BatchBasis], None] | None = None,
) -> BasisRequest | None:
    """What a batch basis of ``work`` needs: its MoE layers (pure ones: the built-in model's), three batches in
    ``batches`` (lowest, highest) with the highest one's expert coverage, the middle one ``work``'s own batch when it
    lies between the others with that coverage (its language passes, traced already, are then reused), and the low
    points below the first of them; None when there are none."""
    moe = _moe(source, model, options.pure_modules)
    points = _points(moe, route, seq_len=options.seq_len, batches=batches)
    if points is None:
        return None
    p1, _, p3 = points
    tokens = _tokens(options.seq_len)
    if p1 < work.batch_size < p3 and called_experts(moe, route, tokens, work.batch_size) == called_experts(
        moe, route, tokens, p3
    ):
        points = (p1, work.batch_size, p3)

    def far_for(b: int) -> Driver | None:
        return _far_driver(source, model, attrs.evolve(work, batch_size=b), route, far_new_tokens)

    return BasisRequest(
        points=points,
        moe=moe,
        routing=route,
        seq_len=options.seq_len,
        far_for=far_for,
        low=low_points(p1),
        early=early,
    )


def first_basis_batch(
    model_source: TraceableSource,
    workload: Workload | Ocr2Workload,
    *,
    routing: RoutingModel,
    model: nn.Module,
    batches: tuple[int, int],
) -> int | None:
    """The lowest batch a batch basis of ``workload``'s shapes over ``batches`` (lowest, highest) would derive (its
    first point, where every MoE layer reaches the experts it reaches at the highest), or None when it would have
    none (no replayable MoE layers, or fewer than three such batches)."""
    seq_len = model_source.make_driver(model, workload, routing).seq_len
    points = _points(_moe(model_source, model, _pure_modules(model_source)), routing, seq_len=seq_len, batches=batches)
    return points[0] if points is not None else None


def _points(
    moe: tuple[MoeLayer, ...], route: RoutingModel, *, seq_len: int, batches: tuple[int, int]
) -> tuple[int, int, int] | None:
    return choose_points(moe, route, _tokens(seq_len), low=batches[0], high=batches[1]) if moe else None


def _tokens(seq_len: int) -> dict[str, int]:
    """Tokens per batch row of each pass kind: ``S`` for the prefill, 1 for a decode step."""
    return {"prefill": seq_len, "step": 1}


def _moe(source: TraceableSource, model: nn.Module, pure: frozenset[type]) -> tuple[MoeLayer, ...]:
    """The MoE layers a batch basis reads: the source's own when it names them (``moe_layers(model)``: path, routing
    layer index, routed experts, experts per token and whether the experts are one fused module
    (:attr:`~llm_perf_opt.tracer.batch_derive.MoeLayer.fused`) of each; DeepSeek-OCR-2's fused experts are no module
    list), else :func:`moe_layers`."""
    named = getattr(source, "moe_layers", None)
    if callable(named):
        return tuple(MoeLayer(path=p, layer_idx=i, experts=e, top_k=k, fused=f) for p, i, e, k, f in named(model))
    return moe_layers(model, pure)


def moe_layers(model: nn.Module, pure: frozenset[type]) -> tuple[MoeLayer, ...]:
    """The MoE layers of ``model`` whose class is in ``pure`` (a routed ``experts`` list, ``layer_idx`` and
    ``num_experts_per_tok``), in module order."""
    out = []
    for path, module in model.named_modules():
        experts = getattr(module, "experts", None)
        if type(module) in pure and isinstance(experts, nn.ModuleList) and hasattr(module, "layer_idx"):
            out.append(
                MoeLayer(
                    path=path,
                    layer_idx=int(module.layer_idx),
                    experts=len(experts),
                    top_k=int(module.num_experts_per_tok),
                )
            )
    return tuple(out)


def _far_driver(
    source: TraceableSource, model: nn.Module, work: Any, route: RoutingModel, far_new_tokens: int | None
) -> Driver | None:
    """A driver of ``work`` at ``far_new_tokens`` new tokens, or None (not further than the workload, or a length
    the workload refuses: the basis then covers the traced steps only)."""
    if far_new_tokens is None or far_new_tokens <= work.max_new_tokens:
        return None
    try:
        return source.make_driver(model, attrs.evolve(work, max_new_tokens=far_new_tokens), route)
    except UserError:
        return None


def _pure_modules(source: TraceableSource) -> frozenset[type]:
    """The source's ``pure_modules()`` (classes a trace may replay), else none."""
    pure = getattr(source, "pure_modules", None)
    return frozenset(pure()) if callable(pure) else frozenset()


def stage_rules(source: TraceableSource) -> StageRules:
    """The source's stage anchors (``source.stage_anchors``: vision/projector/language prefixes), else v1's."""
    anchors = getattr(source, "stage_anchors", None)
    if not anchors:
        return DEEPSEEK_OCR_STAGES
    return StageRules(**{kind: tuple(prefixes) for kind, prefixes in anchors.items()})
