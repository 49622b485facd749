"""The seed's data contracts: attrs classes, the one cattrs converter, report validation, OpenAPI.

Torch-free and dependency-free within the project (it imports only :mod:`llm_perf_opt.errors`).
"""

from llm_perf_opt.contracts.analytic import (
    AnalyticModuleNode,
    AnalyticModuleSummary,
    DeepSeekOCRAnalyticAccepted,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRAnalyticRequest,
    DeepSeekOCRModelSpec,
    ErrorResponse,
    ModuleMetricsSnapshot,
    OCRWorkloadProfile,
    OperatorCategory,
    OperatorMetrics,
)
from llm_perf_opt.contracts.converter import converter, from_json, structure, to_json, unstructure
from llm_perf_opt.contracts.schema import json_schema, openapi_document, openapi_text, type_schema
from llm_perf_opt.contracts.validation import (
    SHARE_LIMIT,
    ValidationResult,
    check_report,
    load_report,
    validate_report,
)
from llm_perf_opt.contracts.vocab import (
    ACCEPTED_STATUSES,
    ATTENTION_KINDS,
    DOC_KINDS,
    REPETITIONS,
    STAGES,
    VISION_BACKBONES,
    AcceptedStatus,
    AttentionKind,
    DocKind,
    ParamValue,
    Repetition,
    Stage,
    VisionBackbone,
)

#: Every contract class, in the order of ``components.schemas`` in ``openapi.yaml``.
CONTRACT_CLASSES: tuple[type, ...] = (
    DeepSeekOCRAnalyticRequest,
    DeepSeekOCRAnalyticAccepted,
    AnalyticModuleSummary,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRModelSpec,
    OCRWorkloadProfile,
    DeepSeekOCRAnalyticModel,
    AnalyticModuleNode,
    OperatorCategory,
    ModuleMetricsSnapshot,
    OperatorMetrics,
    ErrorResponse,
)

__all__ = [
    "ACCEPTED_STATUSES",
    "ATTENTION_KINDS",
    "CONTRACT_CLASSES",
    "DOC_KINDS",
    "REPETITIONS",
    "SHARE_LIMIT",
    "STAGES",
    "VISION_BACKBONES",
    "AcceptedStatus",
    "AnalyticModuleNode",
    "AnalyticModuleSummary",
    "AttentionKind",
    "DeepSeekOCRAnalyticAccepted",
    "DeepSeekOCRAnalyticModel",
    "DeepSeekOCRAnalyticReportSummary",
    "DeepSeekOCRAnalyticRequest",
    "DeepSeekOCRModelSpec",
    "DocKind",
    "ErrorResponse",
    "ModuleMetricsSnapshot",
    "OCRWorkloadProfile",
    "OperatorCategory",
    "OperatorMetrics",
    "ParamValue",
    "Repetition",
    "Stage",
    "ValidationResult",
    "VisionBackbone",
    "check_report",
    "converter",
    "from_json",
    "json_schema",
    "load_report",
    "openapi_document",
    "openapi_text",
    "structure",
    "to_json",
    "type_schema",
    "unstructure",
    "validate_report",
]
