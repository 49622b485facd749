"""Shape-only MoE dispatch for upstream ``DeepseekV2MoE.moe_infer`` (model-facts §4), driven by a routing model.

Upstream sorts the token->expert assignments by expert, gathers the tokens in that order, copies the per-expert
counts to the host (``.cpu().numpy()``: impossible on meta) and runs every expert on its slice.  This function runs
the same tensor ops in the same order; only the slice sizes come from the routing model (balanced by default).
Total MoE FLOPs do not depend on the routing; which expert weights are read, and how often, does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from llm_perf_opt.errors import TraceError
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting

__all__ = ["routed_counts", "shape_only_moe_infer"]


def routed_counts(
    routing: ExpertRouting, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int
) -> Sequence[int]:
    """The routing model's per-expert counts, checked: E non-negative counts summing to T*k."""
    counts = tuple(
        routing.expert_counts(layer_idx=layer_idx, num_tokens=num_tokens, num_experts=num_experts, top_k=top_k)
    )
    if len(counts) != num_experts or sum(counts) != num_tokens * top_k or min(counts, default=0) < 0:
        raise TraceError(
            f"routing model gave {len(counts)} expert counts summing to {sum(counts)} for layer {layer_idx}; "
            f"expected {num_experts} non-negative counts summing to {num_tokens} x top-{top_k} = {num_tokens * top_k}"
        )
    return counts


@torch.no_grad()
def shape_only_moe_infer(
    module: nn.Module, x: Tensor, topk_ids: Tensor, topk_weight: Tensor, *, routing: ExpertRouting, layer_idx: int
) -> Tensor:
    """``moe_infer(x [T, H], topk_ids [T, k], topk_weight [T, k]) -> [T, H]`` with routed slice sizes."""
    experts = module.experts
    assert isinstance(experts, nn.ModuleList)
    num_tokens, top_k = topk_ids.shape
    counts = routed_counts(routing, layer_idx=layer_idx, num_tokens=num_tokens, num_experts=len(experts), top_k=top_k)
    hits = topk_ids.new_zeros((num_tokens, len(experts)))
    hits.scatter_(1, topk_ids, 1)
    hits.sum(dim=0)  # upstream's tokens_per_expert; its values would only feed the host copy replaced here
    order = topk_ids.view(-1).argsort()
    gathered = x[order // top_k]
    outputs = []
    start = 0
    for expert, count in zip(experts, counts, strict=True):
        if count == 0:
            continue
        outputs.append(expert(gathered[start : start + count]))
        start += count
    joined = torch.cat(outputs, dim=0) if outputs else gathered.new_empty(0)
    restored = torch.empty_like(joined)
    restored[order] = joined
    weighted = restored.view(*topk_ids.shape, -1).type(topk_weight.dtype).mul_(topk_weight.unsqueeze(dim=-1))
    return weighted.sum(dim=1).type(restored.dtype)
