"""The fused-MoE kernel's efficiency at small token counts: padded M tiles per expert.

vLLM and SGLang run the routed experts of a DeepSeek-V2 MoE layer as one grouped Triton GEMM (``fused_moe``): the
``T`` tokens' ``T*k`` (token, expert) pairs are sorted by expert and each expert's list is padded up to a multiple of
``BLOCK_SIZE_M`` (``moe_align_block_size``), so an expert that gets ``m`` tokens computes
``BLOCK_SIZE_M * ceil(m / BLOCK_SIZE_M)`` rows.  The tile size comes from a tuned JSON per (E, N, device) keyed by
``M`` (the tokens of the call), or, without one, from the default config: ``BLOCK_SIZE_M = 16`` while ``M <= E``,
``64`` above.  DeepSeek-OCR's decoder (E=64, N=896, bf16) has a tuned file for NVIDIA H20 only, so A100, H100,
H200, L4, A10 and the rest run the default config; on ROCm the same Triton path runs unless AITER is enabled
(docs/validation-runtimes.md, "Not modelled").

Sources read: vllm-project/vllm ``vllm/model_executor/layers/fused_moe/fused_moe.py`` @000d1458
(``get_default_config``, ``try_get_optimal_moe_config``, ``get_config_file_name``: file ``E=64,N=896,...`` with
N = the expert's intermediate size per partition) and its ``configs/`` folder (``E=64,N=896,device_name=NVIDIA_H20``
the only E=64,N=896 file); sgl-project/sglang ``python/sglang/srt/layers/moe/fused_moe_triton/
fused_moe_triton_config.py`` @083d6013 (``get_default_config``: the same 16 / 64 rule for bf16 and fp16; tuned files
per Triton version under ``configs/triton_<version>/``; no E=64,N=896 file for an NVIDIA or AMD device was found).

Left out: the Triton tile's own efficiency below the device peak for full tiles (the roofline's per-category
efficiency stands for it), re-reads of an expert's weights by each of its M tiles (L2 hits with ``GROUP_SIZE_M``),
the CUDA-graph batch padding of decode (a batch of 5 replays the graph captured for 8), and gate correlation.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = [
    "FUSED_MOE_SOURCE",
    "default_block_m",
    "expected_padded_rows",
    "fused_moe_efficiency",
    "padding_efficiency",
]

FUSED_MOE_SOURCE = (
    "vllm-project/vllm vllm/model_executor/layers/fused_moe/fused_moe.py @000d1458 (get_default_config: "
    "BLOCK_SIZE_M 16 while M <= E, else 64; moe_align_block_size pads each expert's tokens to BLOCK_SIZE_M) and "
    "configs/ (E=64,N=896 is tuned for NVIDIA_H20 only); sgl-project/sglang python/sglang/srt/layers/moe/"
    "fused_moe_triton/fused_moe_triton_config.py @083d6013 (get_default_config: the same rule for bf16/fp16)"
)


def default_block_m(*, M: int, E: int) -> int:
    """``BLOCK_SIZE_M`` of vLLM's default bf16/fp16 fused-MoE config for a call of ``M`` tokens over ``E`` experts:
    ``16`` when ``M <= E``, else ``64`` (``get_default_config``; no tuned file for E=64, N=896 but H20's)."""
    if M < 1 or E < 1:
        raise ValueError(f"need M >= 1 and E >= 1, got M={M}, E={E}")
    return 16 if M <= E else 64


def padding_efficiency(*, m: int, block_m: int) -> float:
    """The useful fraction of one expert's grouped-GEMM rows: ``m / (block_m * ceil(m / block_m))`` for ``m >= 1``
    tokens routed to it (``moe_align_block_size`` pads its list to whole M tiles)."""
    if m < 1 or block_m < 1:
        raise ValueError(f"need m >= 1 and block_m >= 1, got m={m}, block_m={block_m}")
    return m / (block_m * math.ceil(m / block_m))


def _log_binomial_pmf(j: int, n: int, p: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * math.log(p) + (n - j) * math.log1p(-p)


@lru_cache(maxsize=4096)
def expected_padded_rows(*, T: int, E: int, k: int, block_m: int) -> float:
    """Expected rows the grouped GEMM computes for ``T`` tokens each routed to ``k`` of ``E`` experts uniformly:
    ``E * sum_j P(X = j) * block_m * ceil(j / block_m)`` with ``X ~ Binomial(T, k/E)`` (one expert's count).

    Source: a token's ``k`` picks are distinct, so each expert receives it with probability ``k/E`` (balanced
    routing, as :func:`llm_perf_opt.workloads.expected_distinct_experts`); the sum runs over ``mean +- 12 sd``.
    """
    if T < 1 or E < 1 or not 1 <= k <= E or block_m < 1:
        raise ValueError(f"need T >= 1, E >= 1, 1 <= k <= E and block_m >= 1, got T={T}, E={E}, k={k}")
    p = k / E
    if p >= 1.0:
        return float(E * block_m * math.ceil(T / block_m))
    mean, sd = T * p, math.sqrt(T * p * (1 - p))
    low, high = max(1, int(mean - 12 * sd) - 1), min(T, int(mean + 12 * sd) + 2)
    rows = sum(math.exp(_log_binomial_pmf(j, T, p)) * block_m * math.ceil(j / block_m) for j in range(low, high + 1))
    return E * rows


def fused_moe_efficiency(*, T: int, E: int, k: int) -> float:
    """Useful over computed rows of the routed experts' grouped GEMM for a call of ``T`` tokens:
    ``T k / expected_padded_rows(T, E, k, default_block_m(T, E))`` (1 for ``T = 0``).

    E=64, k=6: ``1/16`` at T=1 (six experts, one token each, 16-row tiles); about 0.75 at T=1024 (96 tokens per
    expert in 128 rows).  Balanced routing; the tile's efficiency for full tiles is left to the roofline.
    """
    if T == 0:
        return 1.0
    return T * k / expected_padded_rows(T=T, E=E, k=k, block_m=default_block_m(M=T, E=E))
