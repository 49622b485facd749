"""The seed's classes: exact names and fields, help with units on every field, validated literals, extensions."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from llm_perf_opt.contracts import (
    CONTRACT_CLASSES,
    AnalyticModuleNode,
    AnalyticModuleSummary,
    DeepSeekOCRAnalyticAccepted,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRAnalyticRequest,
    DeepSeekOCRModelSpec,
    OCRWorkloadProfile,
    OperatorMetrics,
    analytic,
)

# The seed's fields per class, in the seed's order (seed/python-contracts.md).
SEED_FIELDS: dict[str, list[str]] = {
    "DeepSeekOCRAnalyticRequest": [
        "model_id", "model_variant", "workload_profile_id", "profile_run_id", "force_rebuild",
    ],
    "DeepSeekOCRAnalyticAccepted": ["report_id", "status"],
    "AnalyticModuleSummary": [
        "module_id", "name", "stage", "share_of_model_time", "total_time_ms", "total_flops_tflops",
        "memory_activations_gb",
    ],
    "DeepSeekOCRAnalyticReportSummary": [
        "report_id", "model_variant", "workload_profile_id", "predicted_total_time_ms", "measured_total_time_ms",
        "predicted_vs_measured_ratio", "top_modules", "notes",
    ],
    "DeepSeekOCRModelSpec": [
        "model_id", "model_variant", "hf_revision", "hidden_size", "intermediate_size", "num_layers",
        "num_attention_heads", "vision_backbone", "uses_moe",
    ],
    "OCRWorkloadProfile": [
        "profile_id", "description", "seq_len", "base_size", "image_size", "crop_mode", "max_new_tokens", "doc_kind",
        "num_pages",
    ],
    "DeepSeekOCRAnalyticModel": [
        "report_id", "model", "workload", "modules", "operator_categories", "module_metrics", "profile_run_id",
    ],
    "AnalyticModuleNode": [
        "module_id", "name", "qualified_class_name", "stage", "parent_id", "children", "repetition",
        "repetition_count",
    ],
    "OperatorCategory": ["category_id", "display_name", "description", "match_classes"],
    "ModuleMetricsSnapshot": [
        "module_id", "profile_id", "calls", "total_time_ms", "total_flops_tflops", "total_io_tb",
        "memory_weights_gb", "memory_activations_gb", "memory_kvcache_gb", "share_of_model_time",
        "operator_breakdown",
    ],
    "OperatorMetrics": ["category_id", "calls", "flops_tflops", "io_tb", "share_of_module_flops"],
}  # fmt: skip

# Optional extensions and their defaults (the seed allows only optional fields with defaults).
EXTENSIONS: dict[str, dict[str, Any]] = {
    "DeepSeekOCRAnalyticRequest": dict.fromkeys(
        ["device", "mode", "page_width", "page_height", "prompt_tokens", "max_new_tokens", "batch_size", "dtype",
         "attention", "routing", "routing_histogram", "runtime", "text_only"]
    ),
    "DeepSeekOCRAnalyticAccepted": {"stage": None, "queue_position": None},
    "DeepSeekOCRAnalyticReportSummary": {"runtime": None, "modules_runtime": None, "modules_total_time_ms": None},
    "DeepSeekOCRModelSpec": {"config_path": None, "notes": ""},
    "OCRWorkloadProfile": {"page_width": None, "page_height": None, "prompt_tokens": 9, "batch_size": 1, "mode": None},
    "AnalyticModuleNode": {"constructor_params": {}},
    "DeepSeekOCRAnalyticModel": {
        "predicted_total_time_ms": None, "measured_total_time_ms": None, "predicted_vs_measured_ratio": None,
        "notes": "",
    },
}  # fmt: skip

UNITS = {"_ms": "milliseconds", "_tflops": "1e12 FLOPs", "_tb": "1e12 bytes", "_gb": "1e9 bytes"}
SEED_CLASSES = [cls for cls in CONTRACT_CLASSES if cls.__name__ in SEED_FIELDS]


def _default(a: attrs.Attribute[Any]) -> Any:
    default: Any = a.default
    return default.factory() if hasattr(default, "factory") else default


def test_every_seed_class_is_exported_from_the_seed_module() -> None:
    assert sorted(SEED_FIELDS) == sorted(cls.__name__ for cls in SEED_CLASSES)
    assert all(getattr(analytic, name).__name__ == name for name in SEED_FIELDS)


@pytest.mark.parametrize("cls", SEED_CLASSES, ids=lambda c: c.__name__)
def test_fields_are_the_seed_fields_then_optional_extensions(cls: type) -> None:
    names = [a.name for a in attrs.fields(cls)]
    seed = SEED_FIELDS[cls.__name__]
    assert names[: len(seed)] == seed
    extra = {a.name: _default(a) for a in attrs.fields(cls)[len(seed) :]}
    assert extra == EXTENSIONS.get(cls.__name__, {})


@pytest.mark.parametrize("cls", CONTRACT_CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_help_and_keyword_only_init(cls: type) -> None:
    for a in attrs.fields(cls):
        assert isinstance(a.metadata.get("help"), str) and len(a.metadata["help"]) > 10, a.name
        assert a.kw_only, a.name


@pytest.mark.parametrize("cls", CONTRACT_CLASSES, ids=lambda c: c.__name__)
def test_unit_suffixed_fields_state_their_unit(cls: type) -> None:
    for a in attrs.fields(cls):
        for suffix, unit in UNITS.items():
            if a.name.endswith(suffix):
                assert unit in a.metadata["help"], (a.name, a.metadata["help"])
        if a.name.startswith("share_of"):
            assert "0..1" in a.metadata["help"], a.name


def test_extension_help_says_extension() -> None:
    for cls in SEED_CLASSES:
        for a in attrs.fields(cls):
            is_extension = a.name in EXTENSIONS.get(cls.__name__, {})
            assert a.metadata["help"].startswith("Extension:") == is_extension, (cls.__name__, a.name)


@pytest.mark.parametrize(
    ("cls", "kwargs", "field_name"),
    [
        (DeepSeekOCRAnalyticAccepted, {"report_id": "r", "status": "done"}, "status"),
        (
            AnalyticModuleSummary,
            {"module_id": "m", "name": "m", "stage": "encode", "share_of_model_time": 0.1, "total_time_ms": 1.0,
             "total_flops_tflops": 1.0, "memory_activations_gb": 1.0},
            "stage",
        ),
        (
            AnalyticModuleNode,
            {"module_id": "m", "name": "m", "qualified_class_name": "X", "stage": "other", "children": [],
             "repetition": "while"},
            "repetition",
        ),
        (
            DeepSeekOCRModelSpec,
            {"model_id": "m", "model_variant": "v", "hidden_size": 1, "intermediate_size": 1, "num_layers": 1,
             "num_attention_heads": 1, "vision_backbone": "resnet", "uses_moe": True},
            "vision_backbone",
        ),
        (
            OCRWorkloadProfile,
            {"profile_id": "p", "description": "", "seq_len": 1, "base_size": 1, "image_size": 1, "crop_mode": False,
             "max_new_tokens": 1, "doc_kind": "poster", "num_pages": 1},
            "doc_kind",
        ),
        (
            DeepSeekOCRAnalyticRequest,
            {"model_id": "m", "model_variant": "v", "workload_profile_id": "w", "attention": "fast"},
            "attention",
        ),
    ],
)  # fmt: skip
def test_literal_fields_refuse_values_outside_their_vocabulary(
    cls: type, kwargs: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(ValueError, match=rf"'{field_name}' must be in .* \(got '{kwargs[field_name]}'\)"):
        cls(**kwargs)


def test_int_fields_refuse_bool_and_float_fields_store_floats() -> None:
    with pytest.raises(TypeError, match="'calls' must be int, not bool"):
        OperatorMetrics(category_id="c", calls=True, flops_tflops=0.0, io_tb=0.0, share_of_module_flops=0.0)
    row = OperatorMetrics(category_id="c", calls=1, flops_tflops=2, io_tb=0, share_of_module_flops=1)
    assert type(row.flops_tflops) is float and row.flops_tflops == 2.0
    with pytest.raises(TypeError, match="'io_tb' must be <class 'float'>"):
        OperatorMetrics(category_id="c", calls=1, flops_tflops=0.0, io_tb=True, share_of_module_flops=0.0)
    with pytest.raises(TypeError, match="'flops_tflops' must be <class 'float'>"):
        OperatorMetrics(category_id="c", calls=1, flops_tflops="1", io_tb=0.0, share_of_module_flops=0.0)  # type: ignore[arg-type]


def test_optional_float_fields_keep_none_and_convert_ints() -> None:
    summary = DeepSeekOCRAnalyticReportSummary(
        report_id="r", model_variant="v", workload_profile_id="w", predicted_total_time_ms=5, notes="",
        measured_total_time_ms=4,
    )  # fmt: skip
    assert (summary.predicted_total_time_ms, summary.measured_total_time_ms) == (5.0, 4.0)
    assert summary.predicted_vs_measured_ratio is None
    assert summary.top_modules == []


def test_constructor_params_accept_json_scalars_and_int_lists_only() -> None:
    base: dict[str, Any] = {"module_id": "m", "name": "m", "qualified_class_name": "X", "stage": "other"}
    base["children"] = []
    node = AnalyticModuleNode(
        **base,
        repetition="none",
        constructor_params={"k": [3, 3], "bias": False, "eps": 1e-6, "act": "gelu", "p": None},
    )
    assert node.constructor_params["k"] == [3, 3]
    with pytest.raises(TypeError, match="values must be int, float, str, bool, list of int or None"):
        AnalyticModuleNode(**base, repetition="none", constructor_params={"k": (3, 3)})  # type: ignore[dict-item]


def test_report_model_requires_nested_contract_objects() -> None:
    with pytest.raises(TypeError, match="'model' must be"):
        DeepSeekOCRAnalyticModel(
            report_id="r", model={"model_id": "m"}, workload=None, modules=[], operator_categories=[],  # type: ignore[arg-type]
            module_metrics=[],
        )  # fmt: skip
