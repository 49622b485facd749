"""One trace of a measured model on the meta device, its tree built in the measured dtype and decoder attention
(torch; :mod:`llm_perf_opt.measure.predict` imports it only when the trace cache misses)."""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from llm_perf_opt.sources.deepseek_ocr_v1.driver import BuiltinDriver
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.registry import ModelSource, resolve_model_source
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload

__all__ = ["trace_meta"]

_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def trace_meta(model: str, attention: str, dtype: str, workload: Workload, *, routing: RoutingModel) -> TraceResult:
    """``workload`` traced on ``model`` built with the decoder ``attention`` in ``dtype``, every SDPA call recorded
    as one fused op (as it ran: SAM and CLIP call it whatever the decoder uses)."""
    in_dtype = _InDtype(resolve_model_source(model), _TORCH_DTYPES[dtype])
    tree = _tree(model, attention, dtype)
    return trace_workload(in_dtype, workload, attention="flash", routing=routing, model=tree)


class _InDtype:
    """A built-in model source whose tree and meta inputs are built in ``dtype`` (the tracer's default is bf16)."""

    def __init__(self, source: ModelSource, dtype: torch.dtype) -> None:
        self.source = source
        self.dtype = dtype
        self.name = source.name

    def build(self, *, attn_implementation: str) -> nn.Module:
        return self.source.build(attn_implementation=attn_implementation, dtype=self.dtype)

    def make_driver(self, model: nn.Module, workload: Workload, routing: ExpertRouting) -> BuiltinDriver:
        return BuiltinDriver(model, self.source.make_inputs(workload, dtype=self.dtype), routing)

    def pure_modules(self) -> frozenset[type]:
        """The built-in source's (the tracer replays their repeated calls)."""
        return self.source.pure_modules()


@cache
def _tree(model: str, attention: str, dtype: str) -> nn.Module:
    """The meta tree of ``model`` built with the decoder ``attention`` in ``dtype``, built once per process: a trace
    leaves a tree as it found it (hooks, anchor stubs and KV caches are per pass), so every workload of one
    (model, attention, dtype) traces the same tree (about 0.45 s saved per trace)."""
    return _InDtype(resolve_model_source(model), _TORCH_DTYPES[dtype]).build(attn_implementation=attention)
