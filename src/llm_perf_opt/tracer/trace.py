"""Top level: :func:`trace_workload` traces a model source on a workload and returns a :class:`TraceResult`.

``attention="flash"`` builds the model with ``attn_implementation="sdpa"`` and records every
``F.scaled_dot_product_attention`` call as one fused op with causal-effective executed FLOPs;
``attention="eager"`` builds the eager implementation (explicit matmuls, additive mask, fp32 softmax) and lets
SDPA calls elsewhere (SAM, CLIP) run their math decomposition, counted op by op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import attrs
import torch
from torch import nn

from llm_perf_opt.sources.deepseek_ocr_v1 import WorkloadInputs
from llm_perf_opt.sources.registry import ModelSource, resolve_model_source
from llm_perf_opt.tracer.engine import DecodeMode, InputsDriver, PassInputs, trace_model, trace_model_batched
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.workloads import RoutingModel, Workload, preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = [
    "DEEPSEEK_OCR_STAGES",
    "EXTRAPOLATE_FROM",
    "BatchMode",
    "BuiltinDriver",
    "make_driver",
    "stage_rules",
    "trace_with_driver",
    "trace_workload",
]

DEEPSEEK_OCR_STAGES = StageRules()

BatchMode = Literal["auto", "extrapolate", "every-row"]
EXTRAPOLATE_FROM = 8
"""``batch="auto"`` extrapolates the vision stages from batch 1, 2, 3 at this many rows or more (below it, tracing
every row costs about as much as the three points)."""


class BuiltinDriver(InputsDriver):
    """Runs the built-in DeepSeek-OCR v1 tree: prefill with the workload's images, decode step ``i`` with a cache
    pre-filled (outside the counter) to ``S + i - 1`` positions."""

    def __init__(self, model: nn.Module, inputs: WorkloadInputs, routing: RoutingModel) -> None:
        self.model: Any = model  # DeepseekOCRForCausalLM (or a tree with the same forward and new_cache)
        self.inputs = inputs
        self.routing = routing

    def _new_cache(self) -> Any:
        # one spare position: a view of the filled prefix is then never the whole buffer (torch skips a slice that
        # spans a whole dimension, which would make the last step's view count differ from the others')
        return self.model.new_cache(batch_size=self.inputs.batch_size, max_len=self.inputs.cache_len + 1)

    def _filled(self, out: Any) -> Sequence[torch.Tensor]:
        cache = out.past_key_values
        return [t for layer in range(cache.num_layers) for t in cache.layer(layer)]

    def prefill(self) -> PassInputs:
        cache = self._new_cache()
        kwargs = self.inputs.prefill.kwargs()
        live = [kwargs["input_ids"], kwargs["images_seq_mask"], kwargs["position_ids"]]
        for views in self.inputs.prefill.images:
            live += [t for t in (views.crops, views.global_view) if t is not None]
        model, routing = self.model, self.routing
        return PassInputs(
            run=lambda: model(**kwargs, past_key_values=cache, routing=routing),
            live=live,
            kv=cache.buffers(),
            kv_filled=self._filled,
        )

    def step(self, i: int) -> PassInputs:
        inputs = self.inputs
        cache = self._new_cache()
        cached = inputs.seq_len + i - 1
        with torch.no_grad():
            for layer in range(cache.num_layers):
                key, _ = cache.layer(layer)
                past = key.new_empty((key.shape[0], key.shape[1], cached, key.shape[3]))
                cache.update(layer, past, past)
        step = inputs.decode_step(i)
        kwargs = step.kwargs()
        model, routing = self.model, self.routing
        return PassInputs(
            run=lambda: model(**kwargs, past_key_values=cache, routing=routing),
            live=[kwargs["input_ids"], kwargs["position_ids"]],
            kv=cache.buffers(),
            kv_filled=self._filled,
        )


def trace_workload(
    model_source: ModelSource | str,
    workload: Workload | Ocr2Workload | str,
    *,
    attention: Literal["flash", "eager"] = "flash",
    routing: RoutingModel | None = None,
    decode: DecodeMode = "auto",
    model: nn.Module | None = None,
    verify_fast_meta: bool = False,
    batch: BatchMode = "auto",
) -> TraceResult:
    """Trace ``workload`` (a Workload or a preset id) on ``model_source`` (a ModelSource or its name).

    ``model`` may pass an already built tree (meta, built with the implementation ``attention`` needs) to skip
    building it.  ``decode="every-step"`` traces every decode step instead of fitting three.
    ``verify_fast_meta`` checks every fast-path op output against torch's meta kernel (slow; for tests).
    ``batch="extrapolate"`` traces the vision stages at batch 1, 2, 3 and extrapolates them exactly (see
    :func:`~llm_perf_opt.tracer.engine.trace_model_batched`), ``"every-row"`` traces every row, ``"auto"``
    extrapolates from :data:`EXTRAPOLATE_FROM` rows on.
    Sources with their own driver (``make_driver``: upstream remote code, DeepSeek-OCR-2) and stage anchors
    (``stage_anchors``) are driven through them; see :func:`trace_with_driver` for the driver afterwards.
    """
    result, _ = trace_with_driver(
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
    model_source: ModelSource | str,
    workload: Workload | Ocr2Workload | str,
    *,
    attention: Literal["flash", "eager"] = "flash",
    routing: RoutingModel | None = None,
    decode: DecodeMode = "auto",
    model: nn.Module | None = None,
    verify_fast_meta: bool = False,
    batch: BatchMode = "auto",
) -> tuple[TraceResult, Any]:
    """:func:`trace_workload`, also returning the driver that ran (it counts what a source's adapters did, which
    ``source.provenance(driver)`` reports)."""
    source = resolve_model_source(model_source) if isinstance(model_source, str) else model_source
    work = preset_workload(workload) if isinstance(workload, str) else workload
    route = routing if routing is not None else RoutingModel.balanced()
    if model is None:
        model = source.build(attn_implementation="sdpa" if attention == "flash" else "eager")
    driver = make_driver(source, model, work, route)
    describe = getattr(driver, "describe", None)
    common: dict[str, Any] = {
        "rules": stage_rules(source),
        "attention": attention,
        "routing": route.describe(),
        "model_desc": f"{source.name} ({type(model).__name__})",
        "workload_desc": str(describe() if callable(describe) else work.describe()),
        "seq_len": driver.seq_len,
        "max_new_tokens": driver.max_new_tokens,
        "decode": decode,
        "verify_fast_meta": verify_fast_meta,
    }
    rows = work.batch_size
    if batch == "extrapolate" or (batch == "auto" and rows >= EXTRAPOLATE_FROM):
        built = model

        def driver_for(b: int) -> Any:
            return driver if b == rows else make_driver(source, built, attrs.evolve(work, batch_size=b), route)

        return trace_model_batched(model, driver_for, batch=rows, **common), driver
    return trace_model(model, driver, **common), driver


def make_driver(source: ModelSource, model: nn.Module, workload: Workload | Ocr2Workload, routing: RoutingModel) -> Any:
    """The source's own driver (``source.make_driver``: upstream remote code, DeepSeek-OCR-2), else the built-in one.

    Either has ``prefill()``, ``step(i)``, ``decode_steps``, ``seq_len`` and ``max_new_tokens``.
    """
    custom = getattr(source, "make_driver", None)
    if callable(custom):
        return custom(model, workload, routing)
    return BuiltinDriver(model, source.make_inputs(workload), routing)


def stage_rules(source: ModelSource) -> StageRules:
    """The source's stage anchors (``source.stage_anchors``: vision/projector/language prefixes), else v1's."""
    anchors = getattr(source, "stage_anchors", None)
    if not anchors:
        return DEEPSEEK_OCR_STAGES
    return StageRules(**{kind: tuple(prefixes) for kind, prefixes in anchors.items()})
