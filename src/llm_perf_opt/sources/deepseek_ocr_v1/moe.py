"""DeepSeek-V2 MLPs and mixture of experts (upstream ``modeling_deepseekv2.py``; model-facts §2.4).

``DeepseekV2MoE`` dispatches like upstream's inference path (``moe_infer``): sort the token->expert assignments by
expert, gather the tokens in that order, run every expert that got a non-empty slice, concatenate, scatter back,
weight by the (raw, fp32) gate probabilities, sum over the top-k, then add the shared experts.

Upstream reads the per-expert slice sizes back to the host (``tokens_per_expert.cpu()``), which cannot work on the
meta device.  Here the slice sizes come from a *routing model* (any object with :meth:`ExpertRouting.expert_counts`)
when one is given, and always on meta (``RoutingModel.balanced()`` by default).  Off meta with ``routing=None``
the real gate decisions are used, which is upstream's exact computation (one host sync per MoE layer).  With a
routing model the slice sizes follow it everywhere, so the costs are the routing model's and the numbers are not
the trained model's; off meta the host still reads the gate's counts once per layer, so the host waits where
upstream's does.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import TraceError
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = [
    "DEFAULT_ROUTING",
    "DeepseekV2MLP",
    "DeepseekV2MoE",
    "ExpertRouting",
    "MoEGate",
    "routed_counts",
    "sorted_dispatch",
]


@runtime_checkable
class ExpertRouting(Protocol):
    """What the MoE needs from a routing model (``llm_perf_opt.workloads.routing.RoutingModel`` provides it)."""

    def expert_counts(self, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int) -> tuple[int, ...]:
        """Tokens assigned to each expert; sums to ``num_tokens * top_k``."""
        ...


DEFAULT_ROUTING: ExpertRouting = RoutingModel.balanced()
"""Routing used on meta when none is given: the balanced model of ``llm_perf_opt.workloads.routing``."""


class DeepseekV2MLP(nn.Module):
    """SwiGLU MLP without bias: ``down(silu(gate(x)) * up(x))``; ``act_fn`` is a registered ``nn.SiLU``."""

    def __init__(self, config: DeepseekOCRConfig, intermediate_size: int | None = None) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        if config.hidden_act != "silu":
            raise TraceError(f"hidden_act {config.hidden_act!r} is not supported; expected 'silu'")
        self.act_fn = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return out


class MoEGate(nn.Module):
    """Greedy softmax top-k gate: fp32 logits, softmax over experts, ``topk(sorted=False)``, raw weights x scale."""

    def __init__(self, config: DeepseekOCRConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_routed_experts = config.n_routed_experts
        self.routed_scaling_factor = config.routed_scaling_factor
        self.norm_topk_prob = config.norm_topk_prob
        self.gating_dim = config.hidden_size
        self.weight = nn.Parameter(torch.empty(self.n_routed_experts, self.gating_dim))

    def forward(self, hidden_states: Tensor) -> tuple[Tensor, Tensor, None]:
        """Return ``(topk_idx [T, k], topk_weight [T, k] fp32, None)`` for ``T = B * seq`` tokens."""
        hidden = hidden_states.view(-1, hidden_states.shape[-1])
        logits = F.linear(hidden.type(torch.float32), self.weight.type(torch.float32), None)
        scores = logits.softmax(dim=-1, dtype=torch.float32)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        if self.top_k > 1 and self.norm_topk_prob:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        topk_weight = topk_weight * self.routed_scaling_factor
        return topk_idx, topk_weight, None


class DeepseekV2MoE(nn.Module):
    """64 routed experts (top-6) + the fused shared experts, dispatched as upstream's ``moe_infer``.

    Its layer index decides its ops only through its slice sizes: a trace's replay (:mod:`llm_perf_opt.tracer.replay`)
    ignores it and keys a call by those sizes (:meth:`replay_key`), so the layers whose routed counts agree (every
    layer under balanced routing when ``T*k`` is a multiple of ``E``) replay one layer's tape."""

    replay_ignores: ClassVar[tuple[str, ...]] = ("layer_idx",)

    def __init__(self, config: DeepseekOCRConfig, layer_idx: int) -> None:
        super().__init__()
        self.num_experts_per_tok = config.num_experts_per_tok
        self.layer_idx = layer_idx
        self.ep_size = 1
        self.experts_per_rank = config.n_routed_experts
        self.ep_rank = 0
        self.experts = nn.ModuleList(
            DeepseekV2MLP(config, intermediate_size=config.moe_intermediate_size)
            for _ in range(config.n_routed_experts)
        )
        self.gate = MoEGate(config)
        self.shared_experts = DeepseekV2MLP(
            config, intermediate_size=config.moe_intermediate_size * config.n_shared_experts
        )

    def forward(self, hidden_states: Tensor, routing: ExpertRouting | None = None) -> Tensor:
        identity = hidden_states
        orig_shape = hidden_states.shape
        topk_idx, topk_weight, _ = self.gate(hidden_states)
        flat = hidden_states.view(-1, hidden_states.shape[-1])
        y = self.moe_infer(flat, topk_idx, topk_weight, routing).view(*orig_shape)
        shared: Tensor = self.shared_experts(identity)
        return y + shared

    def replay_key(self, hidden_states: Tensor, routing: ExpertRouting | None = None) -> Hashable:
        """What this layer's index decides of a call of :meth:`forward` on the meta device: the slice sizes its
        dispatch takes (on a real device, the gate's counts decide them: a key no other call has)."""
        if hidden_states.device.type != "meta":
            return object()
        tokens = hidden_states.numel() // hidden_states.shape[-1]  # (no op: a key must not add to the count)
        return tuple(
            routed_counts(
                routing or DEFAULT_ROUTING,
                layer_idx=self.layer_idx,
                num_tokens=tokens,
                num_experts=len(self.experts),
                top_k=self.num_experts_per_tok,
            )
        )

    def moe_infer(self, x: Tensor, topk_ids: Tensor, topk_weight: Tensor, routing: ExpertRouting | None) -> Tensor:
        """Sorted dispatch (:func:`sorted_dispatch`) with this layer's slice sizes."""

        def sizes(tokens_per_expert: Tensor) -> Sequence[int]:
            return self._slice_sizes(tokens_per_expert, num_tokens=topk_ids.shape[0], routing=routing)

        return sorted_dispatch(self.experts, x, topk_ids, topk_weight, sizes=sizes)

    def _slice_sizes(
        self, tokens_per_expert: Tensor, *, num_tokens: int, routing: ExpertRouting | None
    ) -> Sequence[int]:
        num_experts, top_k = len(self.experts), self.num_experts_per_tok
        if tokens_per_expert.device.type != "meta":
            gate_sizes = [int(n) for n in tokens_per_expert.cpu().tolist()]  # upstream's host sync (real devices)
            if routing is None:
                return gate_sizes
        return routed_counts(
            routing or DEFAULT_ROUTING,
            layer_idx=self.layer_idx,
            num_tokens=num_tokens,
            num_experts=num_experts,
            top_k=top_k,
        )


def routed_counts(
    routing: ExpertRouting, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int
) -> Sequence[int]:
    """The routing model's per-expert counts, checked: ``E`` non-negative counts summing to ``T*k``."""
    counts = tuple(
        routing.expert_counts(layer_idx=layer_idx, num_tokens=num_tokens, num_experts=num_experts, top_k=top_k)
    )
    if len(counts) != num_experts or sum(counts) != num_tokens * top_k or min(counts, default=0) < 0:
        raise TraceError(
            f"routing model gave {len(counts)} expert counts summing to {sum(counts)} for layer {layer_idx}; "
            f"expected {num_experts} non-negative counts summing to {num_tokens} tokens x top-{top_k} = "
            f"{num_tokens * top_k}"
        )
    return counts


@torch.no_grad()
def sorted_dispatch(
    experts: nn.ModuleList,
    x: Tensor,
    topk_ids: Tensor,
    topk_weight: Tensor,
    *,
    sizes: Callable[[Tensor], Sequence[int]],
) -> Tensor:
    """Upstream ``moe_infer``'s op sequence: ``x [T, H]``, ``topk_ids``/``topk_weight [T, k]`` -> ``[T, H]``.

    Count the assignments per expert (zeros, scatter, sum), sort them by expert and gather the tokens in that order,
    run every expert on its slice (``sizes(tokens_per_expert)``: the gate's counts or a routing model's; empty
    slices skipped), concatenate, scatter back, weight by the gate probabilities in their dtype (fp32) and sum over
    the top-k.
    """
    hits = topk_ids.new_zeros((topk_ids.shape[0], len(experts)))
    hits.scatter_(1, topk_ids, 1)
    tokens_per_expert = hits.sum(dim=0)
    order = topk_ids.view(-1).argsort()
    gathered = x[order // topk_ids.shape[1]]
    outputs = []
    start = 0
    for expert, size in zip(experts, sizes(tokens_per_expert), strict=True):
        if size == 0:
            continue
        outputs.append(expert(gathered[start : start + size]))
        start += size
    joined = torch.cat(outputs, dim=0) if outputs else gathered.new_empty(0)
    restored = torch.empty_like(joined)
    restored[order] = joined
    weighted = restored.view(*topk_ids.shape, -1).type(topk_weight.dtype).mul_(topk_weight.unsqueeze(dim=-1))
    return weighted.sum(dim=1).type(restored.dtype)
