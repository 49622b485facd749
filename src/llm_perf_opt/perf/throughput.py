"""Throughput of a batch: output tokens per second, pages per second and per day; MoE expert weight traffic.

One page is one sequence of the batch (one request per page). For a batch of ``B`` pages, each generating ``N``
tokens, in ``end_to_end`` seconds (see :class:`~llm_perf_opt.perf.stages.StageTimes`)::

    tokens/s        = B * N / end_to_end
    decode tokens/s = B / TPOT                (steady-state rate during decode)
    pages/s         = B / end_to_end,   pages/day = 86,400 * pages/s

Batches run back to back on one GPU; overlap of one batch's prefill with another's decode (continuous batching) is
left out, so these are the rates of static batching.

With ``T`` tokens in one forward step, each picking ``k`` of ``E`` routed experts, the expected number of distinct
experts an MoE layer reads weights for is ``E * (1 - (1 - k/E)**T)``
(:func:`~llm_perf_opt.workloads.routing.expected_distinct_experts`); :func:`moe_expert_weight_bytes` turns it into
bytes per step, and :class:`ExpectedCoverageRouting` is the routing model that makes a cost model (the analytic one
in sweeps) read expert weights along that curve - instead of the ``min(E, k*T)`` experts of perfectly balanced
routing.
"""

from __future__ import annotations

from attrs import field, frozen

from llm_perf_opt.perf.stages import StageTimes
from llm_perf_opt.workloads.routing import RoutingModel, expected_distinct_experts

__all__ = [
    "SECONDS_PER_DAY",
    "ExpectedCoverageRouting",
    "Throughput",
    "expected_distinct_experts",
    "moe_expert_weight_bytes",
    "throughput",
]

SECONDS_PER_DAY = 86_400


@frozen(kw_only=True)
class Throughput:
    """Rates for one batch on one device."""

    batch_size: int = field(metadata={"help": "B: pages (sequences) per batch"})
    max_new_tokens: int = field(metadata={"help": "N: tokens generated per page"})
    tokens_per_s: float = field(metadata={"help": "generated tokens per second, end to end"})
    decode_tokens_per_s: float = field(metadata={"help": "generated tokens per second during decode (B / TPOT)"})
    pages_per_s: float = field(metadata={"help": "pages per second"})
    pages_per_day: float = field(metadata={"help": "pages per day (86,400 s)"})


def throughput(stages: StageTimes, *, B: int, N: int) -> Throughput:
    """``tokens/s = B*N/e2e``, ``decode tokens/s = B/TPOT``, ``pages/s = B/e2e``, ``pages/day = 86400*pages/s``.

    Zero times give zero rates (nothing was timed), never a division error.
    """
    if B < 1 or N < 1:
        raise ValueError(f"need B >= 1 and N >= 1, got B={B}, N={N}")
    e2e = stages.end_to_end_s
    pages_per_s = B / e2e if e2e > 0 else 0.0
    return Throughput(
        batch_size=B,
        max_new_tokens=N,
        tokens_per_s=B * N / e2e if e2e > 0 else 0.0,
        decode_tokens_per_s=B / stages.tpot_s if stages.tpot_s > 0 else 0.0,
        pages_per_s=pages_per_s,
        pages_per_day=pages_per_s * SECONDS_PER_DAY,
    )


def moe_expert_weight_bytes(*, L_moe: int, E: int, k: int, T: int, W_e: int) -> float:
    """Routed-expert weight bytes one forward step reads: ``L_moe * E * (1 - (1 - k/E)**T) * W_e``.

    ``W_e`` is one expert's weight bytes, ``L_moe`` the MoE layers. Assumes independent uniform top-k picks per token;
    perfectly balanced routing touches ``min(E, k*T)`` experts, skewed routing fewer. Shared experts and the gate are
    read in full every step and are not part of this term.
    """
    return L_moe * expected_distinct_experts(E=E, k=k, T=T) * W_e


@frozen(kw_only=True)
class ExpectedCoverageRouting(RoutingModel):
    """Independent uniform top-k picks: a call with ``T`` tokens touches ``m = round(E*(1-(1-k/E)**T))`` experts.

    The ``T*k`` assignments are spread evenly over those ``m`` experts (each gets at most ``T``, since ``m >= k``),
    starting at expert ``layer_idx*k mod E`` like balanced routing. Leaves out gate correlation between tokens.
    """

    def describe(self) -> str:
        return "uniform(expected coverage E*(1-(1-k/E)^T))"

    def expert_counts(self, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int) -> tuple[int, ...]:
        E, k, T = num_experts, top_k, num_tokens
        if E <= 0 or not 0 < k <= E or T < 0:
            raise ValueError(
                f"need num_experts > 0, 0 < top_k <= num_experts, num_tokens >= 0; got E={E}, k={k}, T={T}"
            )
        if T == 0:
            return (0,) * E
        m = min(max(round(expected_distinct_experts(E=E, k=k, T=T)), k), E, T * k)
        base, extra = divmod(T * k, m)
        start = (layer_idx * k) % E
        counts = [0] * E
        for r in range(m):
            counts[(start + r) % E] = base + (1 if r < extra else 0)
        return tuple(counts)
