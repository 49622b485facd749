"""The rule type of the op registry: every aten op maps to exactly one rule, and every rule is in one bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import field, frozen

from llm_perf_opt.tracer.ops.io import OpIO
from llm_perf_opt.tracer.result import Bucket

__all__ = ["Handler", "Rule", "counted", "zero_cost"]

Handler = Callable[[OpIO, tuple[Any, ...], dict[str, Any], Any], None]
"""``handler(io, args, kwargs, out)``: sets ``io.mm``/``io.mm_exec``/``io.vec`` and charges reads and writes."""


@frozen(kw_only=True)
class Rule:
    """How one op family is accounted for."""

    bucket: Bucket = field(metadata={"help": "counted | zero-cost | unsupported"})
    name: str = field(metadata={"help": "family (counted) or rule name (zero-cost)"})
    reason: str = field(metadata={"help": "what is charged, or why nothing is"})
    category: str = field(default="other", metadata={"help": "category when the innermost module matches none"})
    handler: Handler | None = field(default=None, eq=False, metadata={"help": "cost function (counted only)"})


def counted(name: str, reason: str, category: str, handler: Handler) -> Rule:
    return Rule(bucket="counted", name=name, reason=reason, category=category, handler=handler)


def zero_cost(name: str, reason: str) -> Rule:
    return Rule(bucket="zero-cost", name=name, reason=reason, category="data_movement")
