"""Turn a trace and its timing into the seed's contract objects (``DeepSeekOCRAnalyticModel`` and its summary).

Units change only here, at the contract boundary: FLOPs -> ``*_tflops`` (1e12), bytes -> ``*_tb`` (1e12) and
``*_gb`` (1e9), seconds -> ``*_ms``.  Every float goes through :func:`rounded` (9 significant digits) so two runs
of the same request serialise byte-identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llm_perf_opt.contracts import (
    AnalyticModuleNode,
    AnalyticModuleSummary,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRModelSpec,
    ModuleMetricsSnapshot,
    OCRWorkloadProfile,
    OperatorCategory,
    OperatorMetrics,
)
from llm_perf_opt.core import Cost
from llm_perf_opt.perf import TimedTree
from llm_perf_opt.tracer.result import TracedNode, TraceResult

__all__ = ["BREAKDOWN_RUNTIME", "TOP_MODULES", "build_model_contract", "build_summary", "rounded", "top_module_ids"]

TOP_MODULES = 10

BREAKDOWN_RUNTIME = "hf-eager"
"""The runtime whose per-module times the contracts carry: the traced tree, every op launched on its own."""


def rounded(value: float) -> float:
    """The one place floats are rounded for output: 9 significant digits."""
    return float(f"{value:.9g}")


def _operator_rows(node: TracedNode) -> list[OperatorMetrics]:
    total = node.cost.total_flops
    rows = []
    for category in sorted(node.by_category):
        cost = node.by_category[category]
        rows.append(
            OperatorMetrics(
                category_id=category,
                calls=cost.kernels,
                flops_tflops=rounded(cost.total_flops / 1e12),
                io_tb=rounded(cost.total_bytes / 1e12),
                share_of_module_flops=rounded(cost.total_flops / total) if total else 0.0,
            )
        )
    return rows


def _metrics(node: TracedNode, timed: TimedTree, profile_id: str) -> ModuleMetricsSnapshot:
    cost: Cost = node.cost
    return ModuleMetricsSnapshot(
        module_id=node.module_id,
        profile_id=profile_id,
        calls=node.calls,
        total_time_ms=rounded(timed.nodes[node.module_id].total_s * 1e3),
        total_flops_tflops=rounded(cost.total_flops / 1e12),
        total_io_tb=rounded(cost.total_bytes / 1e12),
        memory_weights_gb=rounded(node.weight_bytes / 1e9),
        memory_activations_gb=rounded(node.peak_activation_bytes / 1e9),
        memory_kvcache_gb=rounded(node.kv_cache_bytes / 1e9),
        share_of_model_time=rounded(timed.share(node.module_id)),
        operator_breakdown=_operator_rows(node),
    )


def _module(node: TracedNode) -> AnalyticModuleNode:
    return AnalyticModuleNode(
        module_id=node.module_id,
        name=node.name,
        qualified_class_name=node.qualified_class_name,
        stage=node.stage,
        parent_id=node.parent_id,
        children=list(node.children),
        repetition=node.repetition,
        repetition_count=node.repetition_count,
        constructor_params={k: (list(v) if isinstance(v, tuple) else v) for k, v in node.constructor_params.items()},
    )


def build_model_contract(
    *,
    report_id: str,
    trace: TraceResult,
    timed: TimedTree,
    model_spec: DeepSeekOCRModelSpec,
    workload: OCRWorkloadProfile,
    categories: Sequence[OperatorCategory],
    profile_run_id: str | None,
    measured_total_ms: float | None,
    notes: str,
    predicted_total_s: float | None = None,
) -> DeepSeekOCRAnalyticModel:
    """The whole tree with per-node metrics, in the trace's parent-first order.  ``predicted_total_s``: the
    request's end-to-end time when a runtime other than the traced op-by-op model times it (per-node times stay the
    op-by-op breakdown)."""
    nodes = list(trace.walk())
    predicted_ms = rounded((timed.total_s if predicted_total_s is None else predicted_total_s) * 1e3)
    return DeepSeekOCRAnalyticModel(
        report_id=report_id,
        model=model_spec,
        workload=workload,
        modules=[_module(n) for n in nodes],
        operator_categories=list(categories),
        module_metrics=[_metrics(n, timed, workload.profile_id) for n in nodes],
        profile_run_id=profile_run_id,
        predicted_total_time_ms=predicted_ms,
        measured_total_time_ms=None if measured_total_ms is None else rounded(measured_total_ms),
        predicted_vs_measured_ratio=(None if not measured_total_ms else rounded(predicted_ms / measured_total_ms)),
        notes=notes,
    )


def top_module_ids(trace: TraceResult, timed: TimedTree, n: int = TOP_MODULES) -> list[str]:
    """The ``n`` module nodes with the most *own* time (so a parent never hides its children); stages excluded."""
    skip = {nid for nid in trace.nodes if "/" not in nid}
    return [nid for nid, _ in timed.top(n, exclude=skip, leaves_only=True)]


def build_summary(
    *,
    model: DeepSeekOCRAnalyticModel,
    trace: TraceResult,
    timed: TimedTree,
    notes: str,
    runtime: str = BREAKDOWN_RUNTIME,
    n_top: int = TOP_MODULES,
) -> DeepSeekOCRAnalyticReportSummary:
    """The stakeholder view: total predicted time, the top modules by own time, and the assumptions as notes.

    A module with children is listed by its own ops (e.g. an attention module's score/softmax/SDPA work, apart from
    its projections), named ``"<name> (own ops)"``, with its own time and FLOPs.  Module times exist only for the
    traced op-by-op tree (:data:`BREAKDOWN_RUNTIME`); when ``runtime`` (the one that made
    ``model.predicted_total_time_ms``) is another, the summary names both and the breakdown's own total, so every
    share is of a total the file states (``modules_total_time_ms``), and a module may exceed the request's time.
    """
    metrics: Mapping[str, ModuleMetricsSnapshot] = {m.module_id: m for m in model.module_metrics}
    top = []
    for nid in top_module_ids(trace, timed, n_top):
        node = trace.nodes[nid]
        own_s = timed.nodes[nid].own_s
        children = Cost.total(trace.nodes[c].cost for c in node.children)
        own_flops = node.cost.total_flops - children.total_flops
        top.append(
            AnalyticModuleSummary(
                module_id=nid,
                name=node.name if not node.children else f"{node.name} (own ops)",
                stage=node.stage,
                share_of_model_time=rounded(own_s / timed.total_s) if timed.total_s else 0.0,
                total_time_ms=rounded(own_s * 1e3),
                total_flops_tflops=rounded(own_flops / 1e12),
                memory_activations_gb=metrics[nid].memory_activations_gb,
            )
        )
    return DeepSeekOCRAnalyticReportSummary(
        report_id=model.report_id,
        model_variant=model.model.model_variant,
        workload_profile_id=model.workload.profile_id,
        predicted_total_time_ms=model.predicted_total_time_ms or 0.0,
        measured_total_time_ms=model.measured_total_time_ms,
        predicted_vs_measured_ratio=model.predicted_vs_measured_ratio,
        top_modules=top,
        notes=notes,
        runtime=runtime,
        modules_runtime=BREAKDOWN_RUNTIME,
        modules_total_time_ms=rounded(timed.total_s * 1e3),
    )
