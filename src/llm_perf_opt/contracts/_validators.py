"""Validators, the float converter and the unit phrases shared by the contract classes.

Numbers stay strict: an ``int`` field refuses ``bool`` (a subclass of ``int`` in Python); a ``float``
field accepts an ``int`` and stores it as ``float``.
"""

from __future__ import annotations

from typing import Any

import attrs
from attrs.validators import deep_iterable, deep_mapping, instance_of, optional

__all__ = [
    "BOOL",
    "FLOAT",
    "GB",
    "INCLUSIVE",
    "INT",
    "MS",
    "OPTIONAL_FLOAT",
    "OPTIONAL_INT",
    "OPTIONAL_STR",
    "PARAMS",
    "SHARE",
    "STR",
    "TB",
    "TFLOPS",
    "as_float",
    "as_optional_float",
    "list_of",
]


def _not_bool(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Refuse ``True``/``False`` where an integer is expected."""
    if isinstance(value, bool):
        raise TypeError(f"'{attribute.name}' must be int, not bool (got {value!r})")


def _param_value(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A constructor parameter: a JSON scalar or a list of integers."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return
    raise TypeError(f"'{attribute.name}' values must be int, float, str, bool, list of int or None (got {value!r})")


def as_float(value: float) -> float:
    """Store an ``int`` given for a float field as ``float``; anything else is left to the validator."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def as_optional_float(value: float | None) -> float | None:
    """:func:`as_float` that lets ``None`` through."""
    return None if value is None else as_float(value)


def list_of(member: type) -> Any:
    """A ``list`` whose items are all instances of ``member``."""
    return deep_iterable(member_validator=instance_of(member), iterable_validator=instance_of(list))


INT: Any = [instance_of(int), _not_bool]
OPTIONAL_INT: Any = optional([instance_of(int), _not_bool])
PARAMS: Any = deep_mapping(
    key_validator=instance_of(str), value_validator=_param_value, mapping_validator=instance_of(dict)
)

STR: Any = instance_of(str)
OPTIONAL_STR: Any = optional(instance_of(str))
BOOL: Any = instance_of(bool)
FLOAT: Any = instance_of(float)
OPTIONAL_FLOAT: Any = optional(instance_of(float))

# Units, as every numeric field's help states them.
MS = "in milliseconds (ms)"
TFLOPS = "in TFLOPs (1 TFLOP = 1e12 FLOPs, 2 FLOPs per multiply-accumulate)"
TB = "in TB (1 TB = 1e12 bytes)"
GB = "in GB (1 GB = 1e9 bytes)"
INCLUSIVE = "inclusive of descendants, summed over all calls and repetitions"
SHARE = "0..1; values above 1 (up to 1.5) are tolerated and flagged by report validation"
