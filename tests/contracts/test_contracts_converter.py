"""The one cattrs converter: the seed's example, JSON round-trips of every class, strict errors with JSON paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_perf_opt.contracts import (
    CONTRACT_CLASSES,
    AnalyticModuleNode,
    DeepSeekOCRAnalyticAccepted,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRAnalyticRequest,
    OperatorMetrics,
    converter,
    from_json,
    structure,
    to_json,
    unstructure,
)
from llm_perf_opt.errors import ContractError, UserError

_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_REQUEST = {"model_id": "deepseek-ai/DeepSeek-OCR", "model_variant": "v1", "workload_profile_id": "dsocr-standard-v1"}


def test_seed_example_runs_verbatim_with_a_plain_converter() -> None:
    from cattrs import Converter

    converter = Converter()

    req = DeepSeekOCRAnalyticRequest(
        model_id="deepseek-ai/DeepSeek-OCR",
        model_variant="deepseek-ocr-v1-base",
        workload_profile_id="dsocr-standard-v1",
    )

    payload = converter.unstructure(req)
    json_payload = json.dumps(payload)
    roundtrip_obj = converter.structure(payload, DeepSeekOCRAnalyticRequest)

    assert roundtrip_obj == req
    assert json.loads(json_payload)["force_rebuild"] is False


def test_seed_example_through_the_project_converter() -> None:
    req = DeepSeekOCRAnalyticRequest(
        model_id="deepseek-ai/DeepSeek-OCR",
        model_variant="deepseek-ocr-v1-base",
        workload_profile_id="dsocr-standard-v1",
    )
    payload = converter.unstructure(req)
    text = json.dumps(payload)
    assert converter.structure(json.loads(text), DeepSeekOCRAnalyticRequest) == req
    assert structure(json.loads(text), DeepSeekOCRAnalyticRequest) == req
    # seed fields first, in the seed's order, then the optional extensions (all null by default)
    assert list(payload)[:5] == ["model_id", "model_variant", "workload_profile_id", "profile_run_id", "force_rebuild"]
    assert {key: payload[key] for key in list(payload)[5:]} == dict.fromkeys(list(payload)[5:])


@pytest.mark.parametrize("cls", CONTRACT_CLASSES, ids=lambda c: c.__name__)
@_SETTINGS
@given(data=st.data())
def test_json_round_trip_of_every_class(
    cls: type, data: st.DataObject, contract_strategy: Callable[[Any], st.SearchStrategy[Any]]
) -> None:
    obj = data.draw(contract_strategy(cls))
    text = to_json(obj)
    assert from_json(text, cls) == obj
    assert structure(unstructure(obj), cls) == obj
    assert to_json(from_json(text, cls)) == text  # byte-identical on the second pass


def test_to_json_is_deterministic_indented_and_keeps_field_order() -> None:
    accepted = DeepSeekOCRAnalyticAccepted(report_id="r1", status="queued")
    assert to_json(accepted) == (
        '{\n  "report_id": "r1",\n  "status": "queued",\n  "stage": null,\n  "queue_position": null\n}\n'
    )


def test_float_fields_take_json_integers_and_store_floats() -> None:
    row = structure(
        {"category_id": "linear", "calls": 3, "flops_tflops": 2, "io_tb": 0, "share_of_module_flops": 1},
        OperatorMetrics,
    )
    assert (row.flops_tflops, row.io_tb, row.share_of_module_flops) == (2.0, 0.0, 1.0)
    assert all(type(v) is float for v in (row.flops_tflops, row.io_tb, row.share_of_module_flops))
    assert '"flops_tflops": 2.0' in to_json(row)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"force_rebuild": 1}, "invalid value for type, expected bool @ $.force_rebuild"),
        ({"force_rebuild": "true"}, "invalid value for type, expected bool @ $.force_rebuild"),
        ({"model_id": 7}, "invalid value for type, expected str @ $.model_id"),
        ({"page_width": True}, "invalid value for type, expected int @ $.page_width"),
        ({"page_width": 1.5}, "invalid value for type, expected int @ $.page_width"),
        ({"profile_run_id": 3}, "invalid value for type, expected str @ $.profile_run_id"),
        ({"attention": "fast"}, "invalid value for type, expected one of 'flash', 'eager' @ $.attention"),
    ],
)
def test_request_type_errors_name_the_json_path(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError) as info:
        structure({**_REQUEST, **patch}, DeepSeekOCRAnalyticRequest)
    assert str(info.value) == message
    assert info.value.path == message.rsplit(" @ ", 1)[1]
    assert isinstance(info.value, UserError)  # the CLI prints it as one line


def test_an_integral_number_is_an_integer_as_json_schema_says() -> None:
    # openapi.yaml's `integer` admits 1024.0 (JSON Schema counts a number with no fractional part as an integer), so
    # the server must not refuse a request the document calls valid; 1.5 and booleans stay refused (above).
    request = structure({**_REQUEST, "page_width": 1024.0, "page_height": 768}, DeepSeekOCRAnalyticRequest)
    assert request.page_width == 1024 and type(request.page_width) is int


def test_unknown_request_keys_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ContractError) as info:
        structure({**_REQUEST, "forse_rebuild": True}, DeepSeekOCRAnalyticRequest)
    message = str(info.value)
    assert message.startswith("unknown field(s) forse_rebuild; expected only: model_id, model_variant")
    assert message.endswith("routing, routing_histogram, runtime, text_only @ $")
    assert "\n" not in message


def test_missing_fields_are_joined_on_one_line() -> None:
    with pytest.raises(ContractError) as info:
        structure({"model_id": "m"}, DeepSeekOCRAnalyticRequest)
    assert str(info.value) == (
        "required field missing @ $.model_variant; required field missing @ $.workload_profile_id"
    )
    assert info.value.path == "$.model_variant"


def test_nested_errors_carry_list_indices_and_keys() -> None:
    node = {
        "module_id": "root",
        "name": "root",
        "qualified_class_name": "M",
        "stage": "other",
        "children": ["a", 3],
        "repetition": "none",
        "constructor_params": {"kernel_size": [3, True]},
    }
    with pytest.raises(ContractError) as info:
        structure(node, AnalyticModuleNode)
    assert str(info.value) == (
        "invalid value for type, expected str @ $.children[1]; "
        "invalid value for type, expected int, float, str, bool, list of int or null"
        " @ $.constructor_params['kernel_size']"
    )


def test_summary_top_modules_errors_point_into_the_list() -> None:
    summary = {
        "report_id": "r",
        "model_variant": "v",
        "workload_profile_id": "w",
        "predicted_total_time_ms": 1.0,
        "notes": "",
        "top_modules": "not a list",
    }
    with pytest.raises(ContractError, match=r"^invalid value for type, expected list @ \$\.top_modules$"):
        structure(summary, DeepSeekOCRAnalyticReportSummary)
    with pytest.raises(ContractError, match=r"expected object \(AnalyticModuleSummary\) @ \$\.top_modules\[0\]$"):
        structure({**summary, "top_modules": [5]}, DeepSeekOCRAnalyticReportSummary)


@pytest.mark.parametrize("payload", [[1], "text", None, 3])
def test_a_non_object_payload_is_refused_at_the_root(payload: Any) -> None:
    with pytest.raises(ContractError) as info:
        structure(payload, DeepSeekOCRAnalyticRequest)
    assert str(info.value) == "invalid value for type, expected object (DeepSeekOCRAnalyticRequest) @ $"


@pytest.mark.parametrize("text", ['{"model_id": NaN}', '{"model_id": ', "[1, Infinity]"])
def test_from_json_refuses_malformed_json_and_non_finite_numbers(text: str) -> None:
    with pytest.raises(ContractError, match=r"^invalid JSON for DeepSeekOCRAnalyticRequest: .*; expected"):
        from_json(text, DeepSeekOCRAnalyticRequest)


def test_to_json_refuses_non_finite_numbers() -> None:
    row = OperatorMetrics(
        category_id="linear", calls=1, flops_tflops=float("nan"), io_tb=0.0, share_of_module_flops=0.0
    )
    with pytest.raises(ContractError, match="cannot write OperatorMetrics as JSON"):
        to_json(row)
