"""The cost tree of what a measurement ran: the same model and workload traced on the meta device (torch).

The tracer builds the model in bf16 (:data:`TRACE_DTYPE`), so byte counts are bf16 bytes; the time model rescales
them to the measured dtype (``Rates.bytes_scale``).  The traced tree is built with the measured decoder attention
(``eager`` or ``sdpa``) and every ``F.scaled_dot_product_attention`` call is recorded as one fused op - which is what
ran: SAM and CLIP call that op whatever the decoder uses, so an eager measurement is *not* traced with SAM's attention
decomposed into its math.  MoE routing is the tracer's balanced model: exactly what a ``--routing balanced``
measurement ran, and an approximation of a gate-routed one (random weights concentrate tokens on fewer experts).
Traces are cached per (model, workload, attention) in the process.
"""

from __future__ import annotations

from functools import cache

from llm_perf_opt.measure.record import Measurement, MeasurementError, WorkloadRecord
from llm_perf_opt.perf.tree import CostTree, tree_from_nodes
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import MODES, Workload

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
    return _traced(measurement.model, measurement.workload, measurement.attention, workload_of(measurement))


@cache
def _traced(model: str, record: WorkloadRecord, attention: str, workload: Workload) -> CostTree:
    del record  # part of the cache key only
    source = resolve_model_source(model)
    tree = source.build(attn_implementation=attention)  # meta, the measured decoder attention
    result = trace_workload(source, workload, attention="flash", model=tree)  # every SDPA call fused, as it ran
    return tree_from_nodes(result.nodes)
