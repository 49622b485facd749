"""The seed's request and response contracts for DeepSeek-OCR analytic modelling, as attrs classes.

This is the implementation module the seed recommends: it defines the HTTP-facing classes and
re-exports the report classes of :mod:`llm_perf_opt.contracts.report_model`, so every seed class
can be imported from here.  Names and fields follow ``seed/python-contracts.md`` exactly; optional
extensions carry "Extension:" in their ``help``.  Serialization lives outside the classes, in
:mod:`llm_perf_opt.contracts.converter`.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field
from attrs.validators import deep_mapping, in_, instance_of, optional

from llm_perf_opt.contracts._validators import (
    BOOL,
    FLOAT,
    GB,
    INCLUSIVE,
    INT,
    MS,
    OPTIONAL_FLOAT,
    OPTIONAL_INT,
    OPTIONAL_STR,
    SHARE,
    STR,
    TFLOPS,
    as_float,
    as_optional_float,
    list_of,
)
from llm_perf_opt.contracts.report_model import (
    AnalyticModuleNode,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRModelSpec,
    ModuleMetricsSnapshot,
    OCRWorkloadProfile,
    OperatorCategory,
    OperatorMetrics,
)
from llm_perf_opt.contracts.vocab import (
    ACCEPTED_STATUSES,
    ATTENTION_KINDS,
    REPORT_STATUSES,
    STAGES,
    AcceptedStatus,
    AttentionKind,
    ReportStatus,
    Stage,
)

__all__ = [
    "AnalyticModuleNode",
    "AnalyticModuleSummary",
    "DeepSeekOCRAnalyticAccepted",
    "DeepSeekOCRAnalyticModel",
    "DeepSeekOCRAnalyticReportSummary",
    "DeepSeekOCRAnalyticRequest",
    "DeepSeekOCRModelSpec",
    "ErrorResponse",
    "ModuleMetricsSnapshot",
    "OCRWorkloadProfile",
    "OperatorCategory",
    "OperatorMetrics",
    "ReportList",
    "ReportListEntry",
]

_OVERRIDE = "Extension: overrides the workload profile's"
_OPTIONAL_HISTOGRAM: Any = optional(deep_mapping(key_validator=instance_of(str), value_validator=list_of(int)))


@define(kw_only=True)
class DeepSeekOCRAnalyticRequest:
    """Request to build or refresh the DeepSeek-OCR analytic model."""

    model_id: str = field(validator=STR, metadata={"help": "Canonical model id (e.g. deepseek-ai/DeepSeek-OCR)."})
    model_variant: str = field(validator=STR, metadata={"help": "Internal model variant (e.g. deepseek-ocr-v1-base)."})
    workload_profile_id: str = field(validator=STR, metadata={"help": "Workload profile id (e.g. dsocr-standard-v1)."})
    profile_run_id: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Optional Stage 1/Stage 2 profiling run id to validate against; null for none."},
    )
    force_rebuild: bool = field(
        default=False,
        validator=BOOL,
        metadata={"help": "Force recomputation even if a matching analytic report already exists."},
    )
    device: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Extension: hardware catalog id of the device that times the model; null for the default."},
    )
    mode: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": f"{_OVERRIDE} resolution mode (tiny, small, base, large, gundam, gundam-m); null keeps it."},
    )
    page_width: int | None = field(
        default=None, validator=OPTIONAL_INT, metadata={"help": f"{_OVERRIDE} page width in pixels; null keeps it."}
    )
    page_height: int | None = field(
        default=None, validator=OPTIONAL_INT, metadata={"help": f"{_OVERRIDE} page height in pixels; null keeps it."}
    )
    prompt_tokens: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": f"{_OVERRIDE} text prompt length in tokens; null keeps it."},
    )
    max_new_tokens: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": f"{_OVERRIDE} generated tokens per page (first from prefill, rest decode); null keeps it."},
    )
    batch_size: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": f"{_OVERRIDE} pages processed together in one forward; null keeps it."},
    )
    dtype: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Extension: dtype of weights and activations (e.g. bfloat16); null for bfloat16."},
    )
    attention: AttentionKind | None = field(
        default=None,
        validator=optional(in_(ATTENTION_KINDS)),
        metadata={
            "help": "Extension: attention kernel whose FLOPs feed time: flash (fused, causal-effective)"
            " or eager (explicit matmuls, dense); null for flash."
        },
    )
    routing: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Extension: MoE routing model (e.g. balanced); null for balanced. Reports name it."},
    )
    routing_histogram: dict[str, list[int]] | None = field(
        default=None,
        validator=_OPTIONAL_HISTOGRAM,
        metadata={
            "help": "Extension: measured tokens per routed expert, {MoE layer index: [count per expert]}, with "
            "routing histogram; null otherwise."
        },
    )
    runtime: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={
            "help": "Extension: inference runtime whose kernels time the request (hf-eager, hf-flash, hf-cuda-graph, "
            "vllm, sglang); null for hf-eager."
        },
    )
    text_only: bool | None = field(
        default=None,
        validator=optional(instance_of(bool)),
        metadata={
            "help": "Extension: true for a request with no image (S = 1 BOS + prompt tokens, no vision stage); "
            "null or false for a page."
        },
    )


@define(kw_only=True)
class DeepSeekOCRAnalyticAccepted:
    """Answer to a run request (and to a GET on a report not built yet): the report id and its status."""

    report_id: str = field(
        validator=STR,
        metadata={"help": "Report id derived from the request (not from a clock); use it in the GET paths."},
    )
    status: AcceptedStatus = field(
        validator=in_(ACCEPTED_STATUSES), metadata={"help": "Build status: queued or running."}
    )
    stage: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={
            "help": "Extension: what the build is doing (queued, waiting for another server building the same "
            "report, building, publishing); null when not known (built by another server)."
        },
    )
    queue_position: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": "Extension: place in the queue while queued (1 = next to start); null once it runs."},
    )


@define(kw_only=True)
class AnalyticModuleSummary:
    """One module in a report summary's top list."""

    module_id: str = field(
        validator=STR,
        metadata={"help": "Module id of the node in the analytic model (e.g. prefill/model.layers.{1..11})."},
    )
    name: str = field(validator=STR, metadata={"help": "Human-readable module name."})
    stage: Stage = field(
        validator=in_(STAGES), metadata={"help": "Stage attribution: vision, projector, prefill, decode or other."}
    )
    share_of_model_time: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"Fraction of the predicted total runtime spent in this module, {INCLUSIVE}; {SHARE}."},
    )
    total_time_ms: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Predicted runtime of this module {MS}, {INCLUSIVE}."}
    )
    total_flops_tflops: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Predicted FLOPs of this module {TFLOPS}, {INCLUSIVE}."}
    )
    memory_activations_gb: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"Predicted peak activation memory of this module {GB}."},
    )


@define(kw_only=True)
class DeepSeekOCRAnalyticReportSummary:
    """Stakeholder view of one analytic report: total time and the top modules."""

    report_id: str = field(validator=STR, metadata={"help": "Report id (as returned by the run request)."})
    model_variant: str = field(validator=STR, metadata={"help": "Model variant (mirrors the request)."})
    workload_profile_id: str = field(validator=STR, metadata={"help": "Workload profile id (mirrors the request)."})
    predicted_total_time_ms: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"Predicted end-to-end runtime {MS}: analytic, over vision, projector, prefill, decode."},
    )
    measured_total_time_ms: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={"help": f"Measured end-to-end runtime {MS}; null when no measurement was compared."},
    )
    predicted_vs_measured_ratio: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={"help": "predicted_total_time_ms / measured_total_time_ms (dimensionless); null without one."},
    )
    top_modules: list[AnalyticModuleSummary] = field(
        factory=list,
        validator=list_of(AnalyticModuleSummary),
        metadata={"help": "Modules with the largest share of model time, largest first."},
    )
    notes: str = field(
        validator=STR,
        metadata={"help": "Notes and caveats for stakeholders (assumptions, routing, attention, unsupported ops)."},
    )
    runtime: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={
            "help": "Extension: runtime whose kernels made predicted_total_time_ms (e.g. vllm); null if unknown."
        },
    )
    modules_runtime: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={
            "help": "Extension: runtime whose per-module breakdown top_modules shows (hf-eager: every traced op "
            "launched on its own; runtimes other than hf-eager have no per-module times); null if unknown."
        },
    )
    modules_total_time_ms: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={
            "help": f"Extension: end-to-end runtime {MS} of that breakdown: every top module's share_of_model_time "
            "is its total_time_ms over this; equals predicted_total_time_ms when modules_runtime is runtime."
        },
    )


@define(kw_only=True)
class ErrorResponse:
    """Body of every HTTP error response (not in the seed: the service's own contract)."""

    error: str = field(validator=STR, metadata={"help": "One line: what was wrong, what was expected, how to fix it."})
    path: str = field(
        validator=STR,
        metadata={
            "help": "Where: a JSON path into the request body ($.force_rebuild; $ for the whole body)"
            " or a URL parameter name (report_id)."
        },
    )


@define(kw_only=True)
class ReportListEntry:
    """One report the service knows: published, or a build that is queued, running or failed."""

    report_id: str = field(validator=STR, metadata={"help": "Report id (use it in the GET paths)."})
    status: ReportStatus = field(
        validator=in_(REPORT_STATUSES), metadata={"help": "published, queued, running or failed."}
    )
    reason: str | None = field(
        default=None, validator=OPTIONAL_STR, metadata={"help": "Why the build failed; null otherwise."}
    )


@define(kw_only=True)
class ReportList:
    """A page of the reports the service knows, by report id."""

    reports: list[ReportListEntry] = field(
        validator=list_of(ReportListEntry), metadata={"help": "The reports of this page, sorted by report id."}
    )
    total: int = field(validator=INT, metadata={"help": "Reports in all pages."})
    offset: int = field(validator=INT, metadata={"help": "Index of the first report of this page."})
    limit: int = field(validator=INT, metadata={"help": "Largest number of reports per page."})
