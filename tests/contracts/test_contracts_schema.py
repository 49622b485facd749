"""The shipped OpenAPI 3.1 document agrees with the attrs classes, and real JSON output fits it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from conftest import schema_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_perf_opt.admission import constrained_request_schema
from llm_perf_opt.contracts import (
    CONTRACT_CLASSES,
    DeepSeekOCRAnalyticRequest,
    json_schema,
    openapi_document,
    openapi_text,
    unstructure,
)
from llm_perf_opt.contracts.schema import type_schema

RUN = "/analytic/deepseek-ocr/run"
SUMMARY = "/analytic/deepseek-ocr/{report_id}/summary"
MODEL = "/analytic/deepseek-ocr/{report_id}/model"
REPORTS = "/analytic/deepseek-ocr/reports"
REPORT = "/analytic/deepseek-ocr/{report_id}"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _body_ref(document: dict[str, Any], response: dict[str, Any]) -> str:
    if "$ref" in response:
        response = _resolve(document, response["$ref"])
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_document_is_openapi_3_1_and_every_ref_resolves(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"]
    for ref in set(_refs(document)):
        assert _resolve(document, ref) is not None


def test_components_hold_exactly_the_contract_classes(document: dict[str, Any]) -> None:
    assert list(document["components"]["schemas"]) == [cls.__name__ for cls in CONTRACT_CLASSES]


@pytest.mark.parametrize("cls", CONTRACT_CLASSES, ids=lambda c: c.__name__)
def test_schema_matches_the_attrs_class(cls: type, document: dict[str, Any]) -> None:
    shipped = document["components"]["schemas"][cls.__name__]
    derived = json_schema(cls)
    if cls is DeepSeekOCRAnalyticRequest:  # plus the admission bounds (llm_perf_opt.admission.limits)
        derived = constrained_request_schema(derived)
    assert list(shipped["properties"]) == list(derived["properties"])  # same fields, same order
    assert shipped["required"] == derived["required"]
    for name, prop in derived["properties"].items():
        assert shipped["properties"][name] == prop, name  # type, nullability, enum, default, description
    assert shipped == derived


def test_nullable_and_enum_derivation() -> None:
    assert type_schema(str | None) == {"type": ["string", "null"]}
    from llm_perf_opt.contracts import AttentionKind

    assert type_schema(AttentionKind | None) == {"type": ["string", "null"], "enum": ["flash", "eager", None]}
    assert type_schema(list[int]) == {"type": "array", "items": {"type": "integer"}}
    with pytest.raises(TypeError, match="no JSON schema"):
        type_schema(set[int])


@pytest.mark.parametrize(
    ("path", "method", "answers"),
    [
        (RUN, "post", {"200": "DeepSeekOCRAnalyticReportSummary", "202": "DeepSeekOCRAnalyticAccepted",
                       "401": "ErrorResponse", "413": "ErrorResponse", "422": "ErrorResponse",
                       "503": "ErrorResponse"}),
        (SUMMARY, "get", {"200": "DeepSeekOCRAnalyticReportSummary", "401": "ErrorResponse", "404": "ErrorResponse",
                          "409": "DeepSeekOCRAnalyticAccepted", "500": "ErrorResponse"}),
        (MODEL, "get", {"200": "DeepSeekOCRAnalyticModel", "401": "ErrorResponse", "404": "ErrorResponse",
                        "409": "DeepSeekOCRAnalyticAccepted", "500": "ErrorResponse"}),
        (REPORTS, "get", {"200": "ReportList", "401": "ErrorResponse", "422": "ErrorResponse"}),
    ],
)  # fmt: skip
def test_paths_answer_with_the_documented_bodies(
    path: str, method: str, answers: dict[str, str], document: dict[str, Any]
) -> None:
    operation = document["paths"][path][method]
    responses = operation["responses"]
    assert {code: _body_ref(document, response) for code, response in responses.items()} == answers
    for response in responses.values():
        resolved = _resolve(document, response["$ref"]) if "$ref" in response else response
        assert resolved["description"].strip()
    if method == "post":
        body = operation["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("/DeepSeekOCRAnalyticRequest")
    elif path == REPORTS:
        assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("offset", "query"), ("limit", "query")]
    else:
        (param,) = [_resolve(document, p["$ref"]) for p in operation["parameters"]]
        assert (param["name"], param["in"], param["required"]) == ("report_id", "path", True)


def test_paths_are_the_three_of_the_seed_plus_list_and_delete(document: dict[str, Any]) -> None:
    assert sorted(document["paths"]) == sorted([RUN, SUMMARY, MODEL, REPORTS, REPORT])
    delete = document["paths"][REPORT]["delete"]["responses"]
    assert sorted(delete) == ["204", "401", "404", "409"]


def test_openapi_text_is_the_packaged_yaml() -> None:
    assert yaml.safe_load(openapi_text()) == openapi_document()
    first = openapi_document()
    first["paths"].clear()
    assert openapi_document()["paths"], "openapi_document() must hand out copies"


@pytest.mark.parametrize("cls", CONTRACT_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_unstructured_instances_fit_the_shipped_schema(
    cls: type,
    data: st.DataObject,
    contract_strategy: Callable[[Any], st.SearchStrategy[Any]],
    check_schema: Callable[[Any, str], list[str]],
    component_schemas: dict[str, Any],
) -> None:
    value = unstructure(data.draw(contract_strategy(cls)))
    if cls is DeepSeekOCRAnalyticRequest:  # random strings break the admission enums: check the types only
        assert schema_errors(value, json_schema(cls), component_schemas) == []
    else:
        assert check_schema(value, cls.__name__) == []


def test_the_request_schema_states_the_admission_bounds(document: dict[str, Any]) -> None:
    from llm_perf_opt.admission import limits

    props = document["components"]["schemas"]["DeepSeekOCRAnalyticRequest"]["properties"]
    assert props["batch_size"]["maximum"] == limits.MAX_BATCH_SIZE
    assert props["max_new_tokens"]["maximum"] == limits.MAX_NEW_TOKENS
    assert props["page_width"]["maximum"] == limits.MAX_PAGE_SIDE_PX
    assert props["routing"]["pattern"] == limits.ROUTING_PATTERN
    assert "h100-sxm" in props["device"]["enum"]
    assert "8192" in props["max_new_tokens"]["description"]


def test_the_schema_checker_catches_a_wrong_payload(check_schema: Callable[[Any, str], list[str]]) -> None:
    bad = {"report_id": 1, "status": "done", "extra": True}
    assert check_schema(bad, "DeepSeekOCRAnalyticAccepted") == [
        "$.report_id: 1 is not ['string']",
        "$.status: 'done' not in ['queued', 'running']",
        "$.extra: not allowed",
    ]
