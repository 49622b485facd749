"""The seed's report contracts (the "contract views"): model spec, workload, module tree and metrics.

Fields the seed's contract view leaves out are optional extensions with defaults; their ``help``
starts with "Extension:".  Units: ``*_ms`` milliseconds, ``*_tflops`` = 1e12 FLOPs (an amount, not
a rate), ``*_tb`` = 1e12 bytes, ``*_gb`` = 1e9 bytes; shares are fractions.
"""

from __future__ import annotations

from attrs import define, field
from attrs.validators import in_, instance_of

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
    PARAMS,
    SHARE,
    STR,
    TB,
    TFLOPS,
    as_float,
    as_optional_float,
    list_of,
)
from llm_perf_opt.contracts.vocab import (
    DOC_KINDS,
    REPETITIONS,
    STAGES,
    VISION_BACKBONES,
    DocKind,
    ParamValue,
    Repetition,
    Stage,
    VisionBackbone,
)

__all__ = [
    "AnalyticModuleNode",
    "DeepSeekOCRAnalyticModel",
    "DeepSeekOCRModelSpec",
    "ModuleMetricsSnapshot",
    "OCRWorkloadProfile",
    "OperatorCategory",
    "OperatorMetrics",
]

_STAGE = "Stage attribution: vision, projector, prefill, decode or other."
_MODES = "tiny, small, base, large, gundam, gundam-m"


@define(kw_only=True)
class DeepSeekOCRModelSpec:
    """The model a report describes (contract view of the model config)."""

    model_id: str = field(validator=STR, metadata={"help": "Canonical model id (e.g. deepseek-ai/DeepSeek-OCR)."})
    model_variant: str = field(validator=STR, metadata={"help": "Internal model variant (e.g. deepseek-ocr-v1-base)."})
    hf_revision: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Hugging Face revision (commit or tag) of the model source; null for the built-in source."},
    )
    hidden_size: int = field(validator=INT, metadata={"help": "Decoder hidden size (1280 for DeepSeek-OCR v1)."})
    intermediate_size: int = field(
        validator=INT, metadata={"help": "Dense MLP intermediate size (6848 for DeepSeek-OCR v1, layer 0)."}
    )
    num_layers: int = field(validator=INT, metadata={"help": "Decoder layers (12 for DeepSeek-OCR v1)."})
    num_attention_heads: int = field(
        validator=INT, metadata={"help": "Decoder attention heads (10 for DeepSeek-OCR v1)."}
    )
    vision_backbone: VisionBackbone = field(
        validator=in_(VISION_BACKBONES),
        metadata={
            "help": "Vision backbone that sees the pixels: sam_vit_b, clip_vit_l or other"
            " (DeepSeek-OCR v1: sam_vit_b, whose features feed CLIP-L)."
        },
    )
    uses_moe: bool = field(validator=BOOL, metadata={"help": "True when decoder layers use mixture-of-experts MLPs."})
    config_path: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Extension: path or URL of the config the spec was read from; null for built-in defaults."},
    )
    notes: str = field(default="", validator=STR, metadata={"help": "Extension: free-text notes about the model spec."})


@define(kw_only=True)
class OCRWorkloadProfile:
    """A document workload: resolution mode, page, prompt and generation length."""

    profile_id: str = field(validator=STR, metadata={"help": "Workload profile id (e.g. dsocr-standard-v1)."})
    description: str = field(validator=STR, metadata={"help": "What the workload represents."})
    seq_len: int = field(
        validator=INT, metadata={"help": "Prefill sequence length in tokens: 1 (BOS) + image tokens + prompt tokens."}
    )
    base_size: int = field(validator=INT, metadata={"help": "Global view side in pixels (e.g. 1024)."})
    image_size: int = field(
        validator=INT,
        metadata={"help": "Local crop side in pixels (e.g. 640); equals base_size when there are no crops."},
    )
    crop_mode: bool = field(
        validator=BOOL, metadata={"help": "True when the page is tiled into local crops besides the global view."}
    )
    max_new_tokens: int = field(
        validator=INT,
        metadata={"help": "Generated tokens per page: the first from prefill, the rest from decode steps."},
    )
    doc_kind: DocKind = field(
        validator=in_(DOC_KINDS),
        metadata={"help": "Document kind: text_heavy, mixed_layout, image_rich or synthetic."},
    )
    num_pages: int = field(validator=INT, metadata={"help": "Pages in the workload."})
    page_width: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": "Extension: page width in pixels fed to the crop rule; null when not fixed."},
    )
    page_height: int | None = field(
        default=None,
        validator=OPTIONAL_INT,
        metadata={"help": "Extension: page height in pixels fed to the crop rule; null when not fixed."},
    )
    prompt_tokens: int = field(
        default=9, validator=INT, metadata={"help": "Extension: text prompt tokens after the image tokens."}
    )
    batch_size: int = field(
        default=1, validator=INT, metadata={"help": "Extension: pages processed together in one forward."}
    )
    mode: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": f"Extension: resolution mode name ({_MODES}); null when not named."},
    )


@define(kw_only=True)
class AnalyticModuleNode:
    """One node of the module tree (a module, a stage, or a group of repeated modules)."""

    module_id: str = field(
        validator=STR,
        metadata={
            "help": "Stable node id: root, a stage name, or <stage>/<named_modules path> with grouped indices"
            " (e.g. prefill/model.layers.{1..11})."
        },
    )
    name: str = field(validator=STR, metadata={"help": "Human-readable node name."})
    qualified_class_name: str = field(
        validator=STR,
        metadata={"help": "Fully qualified class of the module, without any transformers_modules.<hash> prefix."},
    )
    stage: Stage = field(validator=in_(STAGES), metadata={"help": _STAGE})
    parent_id: str | None = field(
        default=None, validator=OPTIONAL_STR, metadata={"help": "module_id of the parent node; null for the root only."}
    )
    children: list[str] = field(validator=list_of(str), metadata={"help": "module_ids of the direct children."})
    repetition: Repetition = field(
        validator=in_(REPETITIONS),
        metadata={
            "help": "none, for (N sequential repetitions with a data dependence)"
            " or parfor (N independent repetitions of the same work)."
        },
    )
    repetition_count: int | None = field(
        default=None, validator=OPTIONAL_INT, metadata={"help": "N for for/parfor nodes; null (or 1) for none."}
    )
    constructor_params: dict[str, ParamValue] = field(
        factory=dict,
        validator=PARAMS,
        metadata={
            "help": "Extension: constructor arguments that set the cost (e.g. in_features, kernel_size);"
            " JSON scalars or lists of integers."
        },
    )


@define(kw_only=True)
class OperatorCategory:
    """A bucket of operators (conv2d, linear, attention, ...) that metrics are split by."""

    category_id: str = field(validator=STR, metadata={"help": "Category id (e.g. linear, attention, moe_routing)."})
    display_name: str = field(validator=STR, metadata={"help": "Human-readable category name."})
    description: str = field(validator=STR, metadata={"help": "What the category counts and how."})
    match_classes: list[str] = field(
        validator=list_of(str), metadata={"help": "Operator or module names that fall into this category."}
    )


@define(kw_only=True)
class OperatorMetrics:
    """One operator category's share of a module's work."""

    category_id: str = field(validator=STR, metadata={"help": "OperatorCategory.category_id of this row."})
    calls: int = field(validator=INT, metadata={"help": "Operator calls in this category."})
    flops_tflops: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"FLOPs of these operators {TFLOPS}."}
    )
    io_tb: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Bytes read plus written by these operators {TB}."}
    )
    share_of_module_flops: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"Fraction of the module's FLOPs in this category; {SHARE}."},
    )


@define(kw_only=True)
class ModuleMetricsSnapshot:
    """Inclusive metrics of one module node for one workload profile."""

    module_id: str = field(validator=STR, metadata={"help": "AnalyticModuleNode.module_id these metrics belong to."})
    profile_id: str = field(
        validator=STR, metadata={"help": "OCRWorkloadProfile.profile_id these metrics were computed for."}
    )
    calls: int = field(
        validator=INT,
        metadata={"help": "Forward calls of this node over the workload (all repetitions and decode steps)."},
    )
    total_time_ms: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Predicted time {MS}, {INCLUSIVE}."}
    )
    total_flops_tflops: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"FLOPs {TFLOPS}, {INCLUSIVE}."}
    )
    total_io_tb: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={
            "help": f"Bytes read plus written {TB}, {INCLUSIVE};"
            " eager op-level traffic, an upper bound for fused kernels."
        },
    )
    memory_weights_gb: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Parameter bytes of this node {GB}."}
    )
    memory_activations_gb: float = field(
        converter=as_float, validator=FLOAT, metadata={"help": f"Peak activation bytes while this node runs {GB}."}
    )
    memory_kvcache_gb: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"KV-cache bytes held by this node at the end of generation {GB}."},
    )
    share_of_model_time: float = field(
        converter=as_float,
        validator=FLOAT,
        metadata={"help": f"Fraction of the predicted total runtime spent in this node; {SHARE}."},
    )
    operator_breakdown: list[OperatorMetrics] = field(
        validator=list_of(OperatorMetrics), metadata={"help": "Split of this node's operators by category."}
    )


@define(kw_only=True)
class DeepSeekOCRAnalyticModel:
    """A full analytic report: model, workload, module tree, categories and metrics."""

    report_id: str = field(validator=STR, metadata={"help": "Report id derived from the request (not from a clock)."})
    model: DeepSeekOCRModelSpec = field(
        validator=instance_of(DeepSeekOCRModelSpec), metadata={"help": "The model the report describes."}
    )
    workload: OCRWorkloadProfile = field(
        validator=instance_of(OCRWorkloadProfile), metadata={"help": "The workload the report describes."}
    )
    modules: list[AnalyticModuleNode] = field(
        validator=list_of(AnalyticModuleNode),
        metadata={"help": "Module tree: one root (parent_id null), stage nodes, module nodes."},
    )
    operator_categories: list[OperatorCategory] = field(
        validator=list_of(OperatorCategory), metadata={"help": "Operator categories the metrics are split by."}
    )
    module_metrics: list[ModuleMetricsSnapshot] = field(
        validator=list_of(ModuleMetricsSnapshot), metadata={"help": "Inclusive metrics per module node."}
    )
    profile_run_id: str | None = field(
        default=None,
        validator=OPTIONAL_STR,
        metadata={"help": "Profiling run id used for a runtime comparison; null when none."},
    )
    predicted_total_time_ms: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={"help": f"Extension: predicted end-to-end runtime {MS}; null when not timed."},
    )
    measured_total_time_ms: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={"help": f"Extension: measured end-to-end runtime {MS}; null when no measurement was compared."},
    )
    predicted_vs_measured_ratio: float | None = field(
        default=None,
        converter=as_optional_float,
        validator=OPTIONAL_FLOAT,
        metadata={
            "help": "Extension: predicted_total_time_ms / measured_total_time_ms (dimensionless);"
            " null without a measurement."
        },
    )
    notes: str = field(
        default="",
        validator=STR,
        metadata={"help": "Extension: notes and caveats (assumptions, routing, attention kernel, unsupported ops)."},
    )
