"""Comma-separated flag values (``--device h100-sxm,a100-80gb``, ``--batch 1,8``): each once, in the order given."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from llm_perf_opt.errors import UserError

__all__ = ["comma_values", "distinct"]

T = TypeVar("T", bound=Hashable)


def comma_values(text: str, flag: str) -> list[str]:
    """The comma-separated values of ``flag``, stripped, in the order given; none, or one given twice, is a
    :class:`UserError` (a second identical row or simulation would only repeat the first)."""
    values = [t.strip() for t in text.split(",") if t.strip()]
    if not values:
        raise UserError(f"{flag} needs at least one value (comma-separated), got {text!r}")
    return distinct(values, flag, text)


def distinct(values: list[T], flag: str, text: str) -> list[T]:
    """``values`` as parsed from ``flag``'s ``text``; one given twice (``8,08``, ``1024x1024,1024X1024``) is a
    :class:`UserError` naming it."""
    seen: set[T] = set()
    for value in values:
        if value in seen:
            shown = "x".join(map(str, value)) if isinstance(value, tuple) else value
            raise UserError(f"{flag} lists {shown} twice: {text!r}")
        seen.add(value)
    return values
