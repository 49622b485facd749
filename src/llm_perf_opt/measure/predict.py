"""The cost tree of what a measurement ran: the same model and workload traced on the meta device (torch).

The tracer builds the model in bf16 (:data:`TRACE_DTYPE`), so byte counts are bf16 bytes; the time model rescales
them to the measured dtype (``Rates.bytes_scale``).  The traced tree is built with the measured decoder attention
(``eager`` or ``sdpa``) and every ``F.scaled_dot_product_attention`` call is recorded as one fused op - which is what
ran: SAM and CLIP call that op whatever the decoder uses, so an eager measurement is *not* traced with SAM's attention
decomposed into its math.  MoE routing is the tracer's balanced model: exactly what a ``--routing balanced``
measurement ran, and an approximation of a gate-routed one (random weights concentrate tokens on fewer experts).
Traces are kept per (model, workload shapes, attention) in the process and in the trace cache on disk
(:mod:`llm_perf_opt.tracecache`), so measurement files of one workload share one trace and a later run traces
nothing.
"""

from __future__ import annotations

from functools import cache

import attrs

from llm_perf_opt.measure.record import Measurement, MeasurementError
from llm_perf_opt.perf.tree import CostTree, tree_from_nodes
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import TraceCache, trace_key_parts
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import MODES, RoutingModel, Workload

__all__ = ["TRACE_DTYPE", "cost_tree", "counted_dtype", "workload_of"]

TRACE_DTYPE = "bf16"


def counted_dtype(measurement: Measurement) -> str:
    """The dtype the cost tree's bytes are counted in (the tracer's)."""
    del measurement
    return TRACE_DTYPE


def workload_of(measurement: Measurement) -> Workload:
    """Re-create the measured workload from its record; it must give the recorded prefill length."""
    rec = measurement.workload
    if rec.mode not in MODES:
        raise MeasurementError(
            f"measurement {measurement.run_id} uses mode {rec.mode!r}, which is not a named mode "
            f"({', '.join(MODES)}); measure with a named mode"
        )
    config = resolve_model_source(measurement.model).config
    workload = Workload.create(
        mode=rec.mode,
        page=(rec.page_width, rec.page_height),
        prompt_tokens=rec.prompt_tokens,
        max_new_tokens=rec.max_new_tokens,
        batch_size=rec.batch_size,
        config=config,
        profile_id=rec.workload_id,
    )
    if workload.seq_len != rec.seq_len:
        raise MeasurementError(
            f"measurement {measurement.run_id} records S={rec.seq_len} but its page and mode give S={workload.seq_len} "
            "with this version of the tool; re-run measure"
        )
    return workload


def cost_tree(measurement: Measurement) -> CostTree:
    """The traced cost tree (inclusive costs per category) of the measured model, workload and attention."""
    shapes = attrs.evolve(workload_of(measurement), profile_id=None)  # files of one workload share one trace
    return _traced(measurement.model, measurement.attention, shapes)


@cache
def _traced(model: str, attention: str, workload: Workload) -> CostTree:
    source = resolve_model_source(model)
    routing = RoutingModel.balanced()

    def trace() -> tuple[TraceResult, None]:
        # lazy: tracing needs torch; a trace found in the cache does not
        from llm_perf_opt.tracer.trace import trace_workload

        tree = source.build(attn_implementation=attention)  # meta, the measured decoder attention
        # every SDPA call fused, as it ran
        return trace_workload(source, workload, attention="flash", routing=routing, model=tree), None

    parts = trace_key_parts(
        source, workload, attention="flash", routing=routing, extra={"decoder_attention": attention}
    )
    result, _, _ = TraceCache().get_or_trace(parts, trace)
    return tree_from_nodes(result.nodes)
