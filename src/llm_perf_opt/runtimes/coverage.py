"""Expert coverage under a routing model: how many distinct routed experts an iteration of ``T`` tokens touches.

A runtime reads a routed expert's weights once per forward if any of the iteration's tokens picks it, so the expert
weight bytes (and, op by op, the expert kernels) of a step scale with the expected distinct experts hit.  Under
``balanced`` routing that is the uniform closed form ``E(1-(1-k/E)^T)``
(:func:`llm_perf_opt.workloads.expected_distinct_experts`); under ``skewed`` or ``histogram`` routing the same
expectation is taken over the routing model's own popularity: expert ``e`` of layer ``l`` is picked by a token with
probability ``p_e`` (its share of the ``T*k`` assignments at a large ``T``, capped at 1 as the model caps counts at
``T``), and ``D(T) = sum_e 1 - (1-p_e)^T``, averaged over the MoE layers.  Uniform ``p_e = k/E`` gives the closed form
back.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from attrs import field, frozen

from llm_perf_opt.workloads import RoutingModel, expected_distinct_experts

__all__ = ["PROBABILITY_TOKENS", "ExpertCoverage", "expected_distinct_routed", "expert_pick_probabilities"]

PROBABILITY_TOKENS = 1 << 20
"""Tokens at which a routing model's counts are read as per-token pick probabilities (``p_e = c_e / T``): the
largest-remainder rounding then moves each ``p_e`` by under 1e-6."""


def expert_pick_probabilities(routing: RoutingModel, *, layer_idx: int, E: int, k: int) -> tuple[float, ...]:
    """``p_e = c_e(T) / T`` at ``T =`` :data:`PROBABILITY_TOKENS`: the probability that one token picks expert ``e``
    of layer ``layer_idx`` (``sum_e p_e = k``, each ``p_e <= 1``).  Source: :meth:`RoutingModel.expert_counts`;
    leaves out correlation between the experts of one token (only the marginals matter for the expectation)."""
    counts = routing.expert_counts(layer_idx=layer_idx, num_tokens=PROBABILITY_TOKENS, num_experts=E, top_k=k)
    return tuple(c / PROBABILITY_TOKENS for c in counts)


def expected_distinct_routed(*, p: Sequence[float], T: int) -> float:
    """``D(T) = sum_e 1 - (1 - p_e)^T``: expected distinct experts hit by ``T`` tokens that pick independently with
    marginals ``p``.  Source: linearity of expectation over experts; leaves out gate correlation between tokens."""
    return sum(1.0 - (1.0 - pe) ** T for pe in p)


@frozen(kw_only=True)
class ExpertCoverage:
    """Expected distinct routed experts per MoE layer under one routing model; build with :meth:`of`.

    ``None`` or ``balanced`` routing uses the uniform closed form exactly as before (so balanced results do not move);
    any other kind averages :func:`expected_distinct_routed` over the MoE layers (identical popularity vectors -
    every layer of ``skewed`` routing, rotated - are computed once).
    """

    E: int = field(metadata={"help": "routed experts per MoE layer (0: no MoE)"})
    k: int = field(metadata={"help": "experts per token"})
    vectors: tuple[tuple[tuple[float, ...], int], ...] = field(
        default=(),
        metadata={
            "help": "distinct sorted pick-probability vectors and how many layers have each; () for "
            "the uniform closed form"
        },
    )

    @classmethod
    def of(cls, routing: RoutingModel | None, *, E: int, k: int, layers: Sequence[int]) -> ExpertCoverage:
        """The coverage of ``routing`` (``None``: balanced) over the MoE ``layers`` of a model with ``E``/``k``."""
        if routing is None or routing.kind == "balanced" or not E or not layers:
            return cls(E=E, k=k)
        rows = tuple(expert_pick_probabilities(routing, layer_idx=i, E=E, k=k) for i in layers)
        return cls(E=E, k=k, vectors=_unique(rows))

    def distinct(self, T: int) -> float:
        """Expected distinct experts of one MoE layer (averaged over layers) for ``T`` tokens."""
        if not self.E:
            return 0.0
        if not self.vectors:
            return expected_distinct_experts(E=self.E, k=self.k, T=T)
        return _routed(self.vectors, T)


@lru_cache(maxsize=4096)
def _routed(vectors: tuple[tuple[tuple[float, ...], int], ...], T: int) -> float:
    total = sum(expected_distinct_routed(p=p, T=T) * n for p, n in vectors)
    return total / sum(n for _, n in vectors)


def _unique(rows: tuple[tuple[float, ...], ...]) -> tuple[tuple[tuple[float, ...], int], ...]:
    """Each distinct vector (sorted, so rotated copies coincide) with how many layers have it."""
    seen: dict[tuple[float, ...], int] = {}
    for row in rows:
        key = tuple(sorted(row))
        seen[key] = seen.get(key, 0) + 1
    return tuple(seen.items())
