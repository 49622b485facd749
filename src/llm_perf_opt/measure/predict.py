"""The cost tree of what a measurement ran: the same model and workload traced on the meta device.

The tracer builds the model in bf16 (:data:`TRACE_DTYPE`), so byte counts are bf16 bytes; the time model rescales
them to the measured dtype (``Rates.bytes_scale``).  The traced tree is built with the measured decoder attention
(``eager`` or ``sdpa``) and every ``F.scaled_dot_product_attention`` call is recorded as one fused op - which is what
ran: SAM and CLIP call that op whatever the decoder uses, so an eager measurement is *not* traced with SAM's attention
decomposed into its math.  MoE routing is the tracer's balanced model: exactly what a ``--routing balanced``
measurement ran, and an approximation of a gate-routed one (random weights concentrate tokens on fewer experts).
Traces are kept per (model, workload shapes, attention, dtype) in the process and in the trace cache on disk
(:mod:`llm_perf_opt.tracecache`), so measurement files of one workload share one trace and a later run traces
nothing - nor imports torch: the tracing itself (:mod:`~llm_perf_opt.measure.meta_trace`) loads only on a miss.

Memory (:func:`predicted_stage_peaks`) is traced in the *measured* dtype instead (an fp32 run's logits are not twice
a bf16 run's: the bf16 model's fp32 upcast is a second tensor, the fp32 model's is the same one), and a stage's
predicted peak is its traced live-activation peak (inputs included) plus the KV cache at its final length
``S + N - 1`` - the measurement allocates the cache before the vision stage, so every stage holds it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import attrs

from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, normalize_dtype
from llm_perf_opt.measure.record import MEMORY_STAGES, Measurement, MeasurementError
from llm_perf_opt.perf.memory import kv_cache_bytes
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracecache import TraceCache, trace_key, trace_key_parts
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import MODES, RoutingModel, Workload

__all__ = [
    "TRACE_DTYPE",
    "TraceJob",
    "cost_job",
    "cost_tree",
    "counted_dtype",
    "forget_traces",
    "job_cached",
    "memory_job",
    "predicted_stage_peaks",
    "run_job",
    "workload_of",
]

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
    return _traced(*cost_job(measurement)).tree


def predicted_stage_peaks(measurement: Measurement) -> dict[str, int]:
    """``stage -> bytes`` above the weights at the stage's peak, for :data:`MEMORY_STAGES` the measurement ran:
    the live-activation peak traced in the measured dtype plus the KV cache at its final length."""
    workload = workload_of(measurement)
    dtype = normalize_dtype(measurement.dtype)
    result = _traced(*memory_job(measurement))
    config = resolve_model_source(measurement.model).config
    kv = kv_cache_bytes(
        L=config.num_hidden_layers,
        H_kv=config.num_key_value_heads,
        D_h=config.head_dim,
        b=BYTES_PER_ELEMENT[dtype],
        S=workload.seq_len,
        N=workload.max_new_tokens,
        B=workload.batch_size,
    )
    return {s: result.node(s).peak_activation_bytes + kv for s in MEMORY_STAGES if s in result.nodes}


def _shapes(measurement: Measurement) -> Workload:
    """The measured workload without its preset id: files of one workload share one trace."""
    return attrs.evolve(workload_of(measurement), profile_id=None)


TraceJob = tuple[str, str, str, Workload]
"""What decides one trace of :func:`cost_tree` or :func:`predicted_stage_peaks`: model, decoder attention, dtype
and the workload's shapes."""


def cost_job(measurement: Measurement) -> TraceJob:
    """The trace :func:`cost_tree` reads."""
    return measurement.model, measurement.attention, TRACE_DTYPE, _shapes(measurement)


def memory_job(measurement: Measurement) -> TraceJob:
    """The trace :func:`predicted_stage_peaks` reads (in the measured dtype)."""
    return measurement.model, measurement.attention, normalize_dtype(measurement.dtype), _shapes(measurement)


def run_job(job: TraceJob) -> None:
    """Trace ``job`` unless this process has or the trace cache holds it (then it is read from there)."""
    _traced(*job)


def job_cached(job: TraceJob) -> bool:
    """Whether this process holds ``job``'s trace or the trace cache on disk does."""
    return job in _HELD or TraceCache().path(trace_key(_parts(*job))).is_file()


_HELD: set[TraceJob] = set()
"""The jobs :func:`_traced` returned in this process (its memo has no membership test)."""


def forget_traces() -> None:
    """Drop the traces this process holds (the trace cache on disk stays): what a new process starts from."""
    _traced.cache_clear()
    _HELD.clear()


@cache
def _traced(model: str, attention: str, dtype: str, workload: Workload) -> TraceResult:
    def trace() -> tuple[TraceResult, None]:
        # lazy: torch loads only on a cache miss (a warm validation-doc or calibrate never imports it)
        from llm_perf_opt.measure.meta_trace import trace_meta

        return trace_meta(model, attention, dtype, workload, routing=_ROUTING), None

    result, _, _ = TraceCache().get_or_trace(_parts(model, attention, dtype, workload), trace)
    _HELD.add((model, attention, dtype, workload))
    return result


_ROUTING = RoutingModel.balanced()


def _parts(model: str, attention: str, dtype: str, workload: Workload) -> dict[str, Any]:
    return trace_key_parts(
        resolve_model_source(model),
        workload,
        attention="flash",
        routing=_ROUTING,
        extra={"decoder_attention": attention, "dtype": dtype},
    )
