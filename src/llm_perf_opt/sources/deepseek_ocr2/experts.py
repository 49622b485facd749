"""A counting experts implementation for transformers' MoE experts interface (``ExpertsInterface``).

transformers 5.x fuses each MoE layer's experts into one module with 3-D weights and picks the forward by name
(``config._experts_implementation``: ``eager``, ``grouped_mm``, ...).  ``eager`` reads the routing back to the host
(``nonzero``: impossible on meta) and ``grouped_mm`` hides the per-expert sizes inside one op.  This implementation,
registered as :data:`EXPERTS_IMPLEMENTATION`, is a sorted dispatch whose per-expert slice sizes come from the routing
model: sort the token->expert assignments by expert, gather, one ``gate_up`` and one ``down`` linear per expert that
has tokens, weight by the router probabilities, scatter-add back.  The experts run in ascending slice size (ties in
index order), so the last call holds the largest slice and every other output: the peak of the experts' activation
is that call's, which a batch basis derives from the routing model (``MoeLayer.fused``); the ops are those of any
order.  Total FLOPs do not depend on the routing; which expert weights are read does.  It only works inside
:func:`routing_scope` (a trace pass).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llm_perf_opt.core.repeats import repeatable
from llm_perf_opt.errors import TraceError
from llm_perf_opt.sources.deepseek_ocr2.config import EXPERTS_IMPLEMENTATION
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting, routed_counts

__all__ = ["EXPERTS_IMPLEMENTATION", "register_counting_experts", "routed_experts_forward", "routing_scope"]

_SCOPE: contextvars.ContextVar[tuple[ExpertRouting, Mapping[int, int], list[int]] | None] = contextvars.ContextVar(
    "llm_perf_opt_ocr2_routing", default=None
)


@contextlib.contextmanager
def routing_scope(routing: ExpertRouting, layers: Mapping[int, int], uses: list[int] | None = None) -> Iterator[None]:
    """Make ``routing`` (and the experts-module -> decoder-layer map) visible to the experts for the ``with`` body;
    ``uses[0]`` counts the experts calls."""
    token = _SCOPE.set((routing, layers, uses if uses is not None else [0]))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def routed_experts_forward(
    module: nn.Module, hidden_states: Tensor, top_k_index: Tensor, top_k_weights: Tensor
) -> Tensor:
    """``[T, H]`` hidden states, ``[T, k]`` expert ids and weights -> ``[T, H]`` (see the module docstring)."""
    scope = _SCOPE.get()
    if scope is None:
        raise TraceError(f"the {EXPERTS_IMPLEMENTATION} experts implementation runs only inside a trace pass")
    routing, layers, uses = scope
    uses[0] += 1
    gate_up, down = module.gate_up_proj, module.down_proj
    assert isinstance(gate_up, Tensor) and isinstance(down, Tensor)
    num_tokens, top_k = top_k_index.shape
    counts = routed_counts(
        routing, layer_idx=layers[id(module)], num_tokens=num_tokens, num_experts=gate_up.shape[0], top_k=top_k
    )
    order = top_k_index.reshape(-1).argsort()
    token_of = order // top_k
    tokens = hidden_states[token_of]
    weights = top_k_weights.reshape(-1)[order]
    starts = list(itertools.accumulate(counts, initial=0))  # expert e's slice begins at starts[e]
    outputs: dict[int, Tensor] = {}
    for expert in sorted((e for e, count in enumerate(counts) if count), key=lambda e: (counts[e], e)):
        start, count = starts[expert], counts[expert]
        slice_ = tokens[start : start + count]
        outputs[expert] = repeatable(_expert_output, module, slice_, gate_up[expert], down[expert], key=_EXPERT_CALL)
    if outputs:
        joined = torch.cat([outputs[expert] for expert in sorted(outputs)], dim=0)
    else:
        joined = tokens.new_empty((0, hidden_states.shape[-1]))
    joined = joined * weights.unsqueeze(-1).to(joined.dtype)
    out = torch.zeros_like(hidden_states)
    out.index_add_(0, token_of, joined.to(out.dtype))
    return out


_EXPERT_CALL = "routed expert"
"""The key of an expert's call (:func:`~llm_perf_opt.core.repeats.repeatable`): its ops are decided by its module (the
gate), its slice's and weights' layouts, which the tracer keys itself, so the experts of one layer with slices of
one size are counted once (balanced routing: at most two sizes of 64)."""


def _expert_output(module: nn.Module, tokens: Tensor, gate_up: Tensor, down: Tensor) -> Tensor:
    """One expert on its slice: ``down(gate(gate_up(tokens)))``; its intermediates die here (alive into the next
    expert's call, the previous slice would count in that call's peak)."""
    return F.linear(cast(Any, module)._apply_gate(F.linear(tokens, gate_up)), down)


def register_counting_experts() -> None:
    """Register :func:`routed_experts_forward` with transformers' experts interface (idempotent)."""
    # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
    from transformers.integrations.moe import ExpertsInterface

    ExpertsInterface.register(EXPERTS_IMPLEMENTATION, routed_experts_forward)
