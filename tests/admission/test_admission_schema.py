"""The body depth scan and the schema bounds derived from the named limits."""

from __future__ import annotations

import json

from llm_perf_opt.admission import constrained_request_schema, json_depth, limits
from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest, json_schema


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth(b"{}") == 1
    assert json_depth(json.dumps({"a": {"b": [1, [2]]}}).encode()) == 4
    assert json_depth(b'{"a": "[[[[[[[[[[\\"[[[["}') == 1
    assert json_depth(b"[" * 60_000) == limits.MAX_JSON_DEPTH + 1  # stops as soon as it passes the limit


def test_constrained_schema_adds_bounds_without_touching_the_types() -> None:
    derived = json_schema(DeepSeekOCRAnalyticRequest)
    constrained = constrained_request_schema(derived)
    assert derived["properties"]["batch_size"].get("maximum") is None  # a copy, not changed in place
    for name, prop in constrained["properties"].items():
        assert prop["type"] == derived["properties"][name]["type"]
        assert prop["description"].startswith(derived["properties"][name]["description"])
    assert constrained["properties"]["batch_size"]["maximum"] == limits.MAX_BATCH_SIZE
    assert None in constrained["properties"]["device"]["enum"]
