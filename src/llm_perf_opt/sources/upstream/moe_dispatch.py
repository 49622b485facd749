"""Shape-only MoE dispatch for upstream ``DeepseekV2MoE.moe_infer`` (model-facts §4), driven by a routing model.

Upstream sorts the token->expert assignments by expert, gathers the tokens in that order, copies the per-expert
counts to the host (``.cpu().numpy()``: impossible on meta) and runs every expert on its slice.  The replacement is
the built-in model's :func:`~llm_perf_opt.sources.deepseek_ocr_v1.moe.sorted_dispatch` (the same tensor ops in the
same order); only the slice sizes come from the routing model (balanced by default).  Total MoE FLOPs do not depend
on the routing; which expert weights are read, and how often, does.
"""

from __future__ import annotations

from torch import Tensor, nn

from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting, routed_counts, sorted_dispatch

__all__ = ["shape_only_moe_infer"]


def shape_only_moe_infer(
    module: nn.Module, x: Tensor, topk_ids: Tensor, topk_weight: Tensor, *, routing: ExpertRouting, layer_idx: int
) -> Tensor:
    """``moe_infer(x [T, H], topk_ids [T, k], topk_weight [T, k]) -> [T, H]`` with routed slice sizes."""
    experts = module.experts
    assert isinstance(experts, nn.ModuleList)
    num_tokens, top_k = topk_ids.shape
    counts = routed_counts(routing, layer_idx=layer_idx, num_tokens=num_tokens, num_experts=len(experts), top_k=top_k)
    return sorted_dispatch(experts, x, topk_ids, topk_weight, sizes=lambda tokens_per_expert: counts)
