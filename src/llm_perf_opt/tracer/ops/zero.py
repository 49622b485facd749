"""Zero-cost rules: ops that move no data and do no arithmetic, each with its reason.

A view aliases its input (the schema marks the output as an alias that is not written): no bytes, no FLOPs,
no kernel.  Allocation without initialisation, metadata queries and runtime assertions are free too.  Anything
not listed here and without a formula is *unsupported*, never silently free.
"""

from __future__ import annotations

from llm_perf_opt.tracer.ops.rule import OpTable, add, zero_cost

__all__ = ["ALLOCATION", "ASSERTION", "METADATA", "VIEW", "ZERO_RULES"]

VIEW = zero_cost("view", "aliases its input (a view): moves no data")
ALLOCATION = zero_cost("allocation", "allocates memory without writing it")
METADATA = zero_cost("metadata", "reads shapes/strides only")
ASSERTION = zero_cost("assertion", "a runtime check on metadata; no data movement")

_VIEWS_WITHOUT_ALIAS_SCHEMA = "_unsafe_view _reshape_alias lift_fresh lift _conj _neg_view resolve_conj resolve_neg"

ZERO_RULES: OpTable = {}
add(ZERO_RULES, _VIEWS_WITHOUT_ALIAS_SCHEMA.split(), VIEW)
add(
    ZERO_RULES,
    [
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "resize",
        "resize_as",
        "_empty_affine_quantized",
    ],
    ALLOCATION,
)
add(
    ZERO_RULES,
    [
        "sym_size",
        "sym_stride",
        "sym_numel",
        "sym_storage_offset",
        "is_same_size",
        "is_contiguous",
        "_nested_tensor_size",
    ],
    METADATA,
)
add(
    ZERO_RULES,
    [
        "_assert_async",
        "_assert_scalar",
        "_functional_assert_async",
        "_assert_tensor_metadata",
        "_functional_sym_constrain_range",
        "sym_constrain_range",
    ],
    ASSERTION,
)
