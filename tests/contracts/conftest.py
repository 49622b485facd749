"""Hypothesis strategies derived from the contract classes' annotations, and a small JSON Schema checker."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs
import pytest
from hypothesis import strategies as st

from llm_perf_opt.contracts import openapi_document

_TEXT = st.text(max_size=6)


@functools.cache
def strategy_for(type_: Any) -> st.SearchStrategy[Any]:
    """A strategy for any annotation used by the contracts (scalars, literals, unions, lists, dicts, classes)."""
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: _TEXT,
        int: st.integers(min_value=-(2**53), max_value=2**53),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
        types.NoneType: st.none(),
    }
    if type_ in simple:
        return simple[type_]
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (types.UnionType, typing.Union):
        return st.one_of([strategy_for(arg) for arg in args])
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=2)
    if origin is dict:
        return st.dictionaries(_TEXT, strategy_for(args[1]), max_size=3)
    if attrs.has(type_):
        hints = typing.get_type_hints(type_)
        return st.builds(type_, **{a.name: strategy_for(hints[a.name]) for a in attrs.fields(type_)})
    raise TypeError(f"no strategy for {type_!r}")


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def schema_errors(value: Any, schema: dict[str, Any], schemas: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema the document uses: type, enum, required, properties, items, $ref, anyOf."""
    if "$ref" in schema:
        return schema_errors(value, schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, path)
    if "anyOf" in schema:
        ok = any(not schema_errors(value, option, schemas, path) for option in schema["anyOf"])
        return [] if ok else [f"{path}: matches no anyOf option"]
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_JSON_TYPES[kind](value) for kind in kinds):
        return [f"{path}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    errors: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], schemas, f"{path}[{i}]")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, schemas, path)
    return errors


def _object_errors(value: dict[str, Any], schema: dict[str, Any], schemas: dict[str, Any], path: str) -> list[str]:
    props = schema.get("properties", {})
    errors = [f"{path}.{name}: missing" for name in schema.get("required", []) if name not in value]
    for key, item in value.items():
        if key in props:
            errors += schema_errors(item, props[key], schemas, f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{path}.{key}: not allowed")
        else:
            errors += schema_errors(item, schema["additionalProperties"], schemas, f"{path}[{key!r}]")
    return errors


@pytest.fixture(scope="session")
def component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi_document()["components"]["schemas"]
    return schemas


@pytest.fixture(scope="session")
def contract_strategy() -> Callable[[Any], st.SearchStrategy[Any]]:
    """``contract_strategy(cls)``: instances of a contract class (draw it with ``st.data()``)."""
    return strategy_for


@pytest.fixture(scope="session")
def check_schema(component_schemas: dict[str, Any]) -> Callable[[Any, str], list[str]]:
    """``check_schema(data, "ClassName")``: what in the JSON data breaks the shipped OpenAPI schema."""
    return lambda data, name: schema_errors(data, component_schemas[name], component_schemas)
