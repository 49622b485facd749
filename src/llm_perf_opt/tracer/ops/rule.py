"""The rule type of the op registry: every aten op maps to exactly one rule, and every rule is in one bucket.

Tables are keyed by the op objects themselves (``torch.ops.aten.<name>``, an ``OpOverloadPacket`` covering every
overload), as torch's own ``flop_counter`` registers its formulas: a name torch does not have fails at import, and
:func:`add` refuses an op that is already in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from attrs import field, frozen

from llm_perf_opt.tracer.ops.io import OpCall, OpCounts
from llm_perf_opt.tracer.result import Bucket

__all__ = ["Handler", "OpTable", "Rule", "add", "aten_op", "counted", "merge", "zero_cost"]

Handler = Callable[[OpCall], OpCounts]
"""``handler(op) -> counts``: reads the op's arguments by schema name and returns its FLOPs, reads and writes."""


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


OpTable = dict[torch._ops.OpOverloadPacket, Rule]
"""An op family (every overload of ``torch.ops.aten.<name>``) -> its rule."""


def aten_op(name: str) -> torch._ops.OpOverloadPacket:
    """``torch.ops.aten.<name>``; a name the installed torch does not have is a LookupError (at import)."""
    op = getattr(torch.ops.aten, name, None)
    if not isinstance(op, torch._ops.OpOverloadPacket):
        raise LookupError(f"torch {torch.__version__} has no op aten.{name}; remove it from the op registry")
    return op


def add(table: OpTable, names: Iterable[str], rule: Rule) -> None:
    """Register ``rule`` for each ``aten.<name>``; an op registered twice is a ValueError naming it."""
    for name in names:
        op = aten_op(name)
        if op in table:
            raise ValueError(f"aten.{name} is registered twice ({table[op].name} and {rule.name})")
        table[op] = rule


def merge(*tables: OpTable) -> OpTable:
    """One table from several; an op present in two is a ValueError naming it."""
    merged: OpTable = {}
    for table in tables:
        for op, rule in table.items():
            if op in merged:
                raise ValueError(f"{op} is registered twice ({merged[op].name} and {rule.name})")
            merged[op] = rule
    return merged
