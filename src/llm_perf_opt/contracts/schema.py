"""JSON Schema of the contract classes, derived from their attrs fields, and the shipped OpenAPI document.

:func:`json_schema` is what the tests compare ``openapi.yaml`` against, so the hand-written document
and the classes cannot drift apart; :func:`openapi_text` is what the HTTP service serves.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import types
import typing
from typing import Any, Literal

import attrs
import yaml

__all__ = ["json_schema", "openapi_document", "openapi_text", "type_schema"]

_REF_PREFIX = "#/components/schemas/"
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", types.NoneType: "null"}


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1 dialect) of an attrs contract class.

    Required = fields without a default; nullable = ``X | None`` (``type: [x, "null"]``); literals
    become ``enum``; nested classes become ``$ref`` into ``#/components/schemas``; unknown keys are
    refused (``additionalProperties: false``), as the converter refuses them.
    """
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for a in attrs.fields(cls):
        prop = type_schema(hints[a.name])
        prop["description"] = a.metadata["help"]
        if a.default is attrs.NOTHING:
            required.append(a.name)
        else:
            prop["default"] = a.default.factory() if isinstance(a.default, attrs.Factory) else a.default  # type: ignore[arg-type]
        properties[a.name] = prop
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return {
        "type": "object",
        "description": " ".join(doc.split()),
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


def type_schema(type_: Any) -> dict[str, Any]:
    """The schema of one annotation (scalars, literals, ``X | None``, lists, string-keyed dicts, classes)."""
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if type_ in _SCALARS:
        return {"type": _SCALARS[type_]}
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin in (types.UnionType, typing.Union):
        return _union_schema(args)
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])}
    if origin is dict and args[0] is str:
        return {"type": "object", "additionalProperties": type_schema(args[1])}
    if attrs.has(type_):
        return {"$ref": _REF_PREFIX + type_.__name__}
    raise TypeError(f"no JSON schema for annotation {type_!r}")


def _union_schema(args: tuple[Any, ...]) -> dict[str, Any]:
    rest = [arg for arg in args if arg is not types.NoneType]
    if len(rest) == 1 and len(args) == 2:
        inner = type_schema(rest[0])
        if isinstance(inner.get("type"), str):
            nullable = {**inner, "type": [inner["type"], "null"]}
            if "enum" in inner:
                nullable["enum"] = [*inner["enum"], None]
            return nullable
    return {"anyOf": [type_schema(arg) for arg in args]}


def openapi_text() -> str:
    """The shipped ``openapi.yaml`` (OpenAPI 3.1), as text."""
    return importlib.resources.files("llm_perf_opt.contracts").joinpath("openapi.yaml").read_text(encoding="utf-8")


@functools.cache
def _parsed() -> dict[str, Any]:
    document = yaml.safe_load(openapi_text())
    assert isinstance(document, dict)
    return document


def openapi_document() -> dict[str, Any]:
    """The shipped OpenAPI document, parsed (a fresh copy on every call)."""
    return copy.deepcopy(_parsed())
