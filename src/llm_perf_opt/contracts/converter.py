"""The one cattrs converter of the project: strict JSON <-> contract classes.

Structuring is strict where JSON is: a ``bool`` must be a JSON boolean, a ``str`` a string, an
``int`` an integer (or an integral number such as ``2.0``, as JSON Schema's ``integer``; never a boolean), a
``float`` any JSON number (stored as ``float``), a list a
JSON array, an object a JSON object, and unknown keys are refused (a typo in a request is an error,
not a silently ignored field).  Every failure becomes one
:class:`~llm_perf_opt.errors.ContractError` line naming the JSON path, e.g.
``invalid value for type, expected bool @ $.force_rebuild``; several failures are joined by "; ".

Unstructuring keeps the classes' field order, and :func:`to_json` writes it with ``indent=2`` and a
trailing newline, so the same object always gives the same bytes.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.cols import list_structure_factory, mapping_structure_factory
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception, transform_error

from llm_perf_opt.contracts.vocab import ParamValue
from llm_perf_opt.errors import ContractError

__all__ = ["converter", "from_json", "structure", "to_json", "unstructure"]

T = TypeVar("T")


class _WrongValueError(TypeError):
    """A value of the wrong JSON type (or outside a closed vocabulary); ``expected`` says what fits."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        super().__init__(f"expected {expected}")


def _strict(kind: type) -> Callable[[Any, type], Any]:
    def hook(value: Any, _type: type) -> Any:
        if type(value) is not kind:
            raise _WrongValueError(kind.__name__)
        return value

    return hook


def _structure_int(value: Any, _type: type) -> int:
    """A JSON integer: an ``int``, or a number with no fractional part (``1.0``), which JSON Schema's ``integer``
    also admits (so a request valid against openapi.yaml is not refused for writing ``2.0``); never a boolean."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _WrongValueError("int")


def _structure_float(value: Any, _type: type) -> float:
    if type(value) not in (int, float):
        raise _WrongValueError("float")
    return float(value)


def _structure_literal(value: Any, type_: Any) -> Any:
    allowed = typing.get_args(type_)
    if not any(value == choice and type(value) is type(choice) for choice in allowed):
        raise _WrongValueError("one of " + ", ".join(repr(choice) for choice in allowed))
    return value


def _structure_param(value: Any, _type: Any) -> ParamValue:
    if value is None or type(value) in (bool, int, float, str):
        return typing.cast(ParamValue, value)
    if type(value) is list and all(type(item) is int for item in value):
        return list(value)
    raise _WrongValueError("int, float, str, bool, list of int or null")


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _is_list(type_: Any) -> bool:
    return typing.get_origin(type_) is list


def _is_dict(type_: Any) -> bool:
    return typing.get_origin(type_) is dict


def _checked(kind: type, expected: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a cattrs hook so a value of the wrong container type fails with one clear line."""

    def hook(value: Any, type_: Any) -> Any:
        if type(value) is not kind:
            raise _WrongValueError(expected)
        return inner(value, type_)

    return hook


def _list_hook(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    return _checked(list, "list", list_structure_factory(type_, conv))


def _dict_hook(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    return _checked(dict, "dict", mapping_structure_factory(type_, conv))


def _attrs_hook(cls: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
    return _checked(dict, f"object ({cls.__name__})", inner)


def _type_name(type_: Any) -> str:
    if type_ is types.NoneType:
        return "null"
    if typing.get_origin(type_) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(arg) for arg in typing.get_args(type_))
    if _is_literal(type_):
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(type_))
    origin = typing.get_origin(type_)
    if origin is not None:
        return str(origin.__name__)
    return str(getattr(type_, "__name__", repr(type_)))


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, _WrongValueError):
        return f"invalid value for type, expected {exc.expected}"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        known = ", ".join(a.name for a in attrs.fields(exc.cl))
        return f"unknown field(s) {', '.join(sorted(exc.extra_fields))}; expected only: {known}"
    if isinstance(exc, (TypeError, ValueError)) and type_ is not None:
        return f"invalid value for type, expected {_type_name(type_)}"
    return format_exception(exc, type_)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for kind in (str, bool):
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook_func(lambda t: t == ParamValue, _structure_param)
    conv.register_structure_hook_func(_is_literal, _structure_literal)
    conv.register_structure_hook_factory(_is_list, _list_hook)
    conv.register_structure_hook_factory(_is_dict, _dict_hook)
    conv.register_structure_hook_factory(attrs.has, _attrs_hook)
    return conv


#: The project's one converter.  Prefer :func:`structure`, which turns failures into ``ContractError``.
converter: cattrs.Converter = _make_converter()


def _one_line(exc: Exception) -> ContractError:
    lines = transform_error(exc, format_exception=_format)
    path = lines[0].rsplit(" @ ", 1)[-1] if " @ " in lines[0] else "$"
    return ContractError("; ".join(lines), path=path)


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from JSON-like data; raises :class:`ContractError` with the JSON path of each problem."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _one_line(exc) from exc


def unstructure(obj: Any) -> Any:
    """Plain JSON-ready data (dicts in field order, lists, scalars) for a contract object."""
    return converter.unstructure(obj)


def to_json(obj: Any) -> str:
    """Deterministic JSON text: field order kept, ``indent=2``, ASCII, a trailing newline; no NaN or infinity."""
    try:
        text = json.dumps(unstructure(obj), indent=2, allow_nan=False)
    except ValueError as exc:
        raise ContractError(f"cannot write {type(obj).__name__} as JSON: {exc}; expected finite numbers") from exc
    return text + "\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def from_json(text: str | bytes, cls: type[T]) -> T:
    """Parse strict JSON text (no NaN/Infinity) and structure it into ``cls``."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ContractError(f"invalid JSON for {cls.__name__}: {exc}; expected a JSON object", path="$") from exc
    return structure(data, cls)
