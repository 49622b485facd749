"""The op registry: one :class:`Rule` per aten op, and how an op's outputs relate to its inputs.

Rules are keyed by op objects (``torch.ops.aten.<name>``, every overload of it), each registered once.  Lookup
order for an op overload ``aten::name[_].overload``: the entry for its packet (e.g. ``aten.copy_``), then the entry
for ``aten.name`` (in-place and out-of-place variants share a formula), then the schema: an op whose outputs are
all marked as non-written aliases of an input is a view (zero-cost).  Anything else is unsupported.
"""

from __future__ import annotations

import torch

from llm_perf_opt.tracer.ops.matmul import MATMUL_RULES
from llm_perf_opt.tracer.ops.movement import MOVEMENT_RULES
from llm_perf_opt.tracer.ops.rule import OpTable, Rule, merge
from llm_perf_opt.tracer.ops.vector import VECTOR_RULES
from llm_perf_opt.tracer.ops.zero import VIEW, ZERO_RULES

__all__ = ["FRESH", "INPLACE", "RULES", "UNSUPPORTED", "VIEWING", "op_name", "resolve"]

FRESH = 0
"""The op allocates its outputs (their storages are new activations)."""
VIEWING = 1
"""The outputs alias an input and nothing is written (views)."""
INPLACE = 2
"""The op writes into an input (``add_``, ``copy_``, ``out=``); no new storage."""

UNSUPPORTED = Rule(bucket="unsupported", name="", reason="no formula and no zero-cost rule", category="other")

RULES: OpTable = merge(MATMUL_RULES, VECTOR_RULES, MOVEMENT_RULES, ZERO_RULES)


def op_name(func: torch._ops.OpOverload) -> str:
    """``aten.add_.Tensor`` style name used in the ledger."""
    return str(func)


def _aliasing(schema: torch.FunctionSchema) -> int:
    written = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)
    if written:
        return INPLACE
    returns = schema.returns
    if returns and all(r.alias_info is not None for r in returns):
        return VIEWING
    return FRESH


def resolve(func: torch._ops.OpOverload) -> tuple[Rule, int]:
    """The rule for ``func`` and its aliasing kind (FRESH, VIEWING or INPLACE)."""
    schema = func._schema
    namespace, _, full = schema.name.partition("::")
    aliasing = _aliasing(schema)
    if namespace == "aten":
        rule = RULES.get(func.overloadpacket)
        if rule is None and full.endswith("_") and not full.endswith("__"):
            out_of_place = getattr(torch.ops.aten, full[:-1], None)
            rule = RULES.get(out_of_place) if out_of_place is not None else None
        if rule is not None:
            if rule is VIEW:
                aliasing = VIEWING
            return rule, aliasing
    if aliasing == VIEWING:
        return VIEW, VIEWING
    return UNSUPPORTED, aliasing
