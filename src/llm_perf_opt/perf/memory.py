"""Device memory: weights, KV cache (counted once), peak activations (a max), and the capacity check.

* Weights: ``P * b`` bytes for ``P`` parameters stored at ``b`` bytes each (base model, bf16:
  3,336,106,240 * 2 = 6,672,212,480 B).
* KV cache: ``2 * L * H_kv * D_h * b`` bytes per cached token per sequence (base, bf16: 2*12*10*128*2 = 61,440 B).
  After generating ``N`` tokens from a prompt of ``S`` the cache holds ``S + N - 1`` tokens (the last token is never
  fed back) - the *final* length, counted once: the prefill context is part of it, never added a second time.
* Peak activations: the largest live set at any one point of the run - a max over steps, never a sum over layers.
* Total = weights + KV + peak activations. Left out: CUDA context (~0.3-0.5 GB), allocator fragmentation and
  workspace (cuBLAS, attention), the transient copy a growing ``torch.cat`` cache makes (upstream re-allocates the
  cache each step) - the catalog's capacity (datasheet GB as 1e9 B) leaves some headroom for them.

Scaling with batch ``B``: weights are shared; KV and activations are per sequence (linear in ``B``).
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core.counts import rescale_bytes
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec, normalize_dtype

__all__ = [
    "CapacityCheck",
    "MemoryFootprint",
    "capacity_check",
    "final_cache_tokens",
    "footprint_at_dtype",
    "kv_bytes_per_token",
    "kv_bytes_per_token_for",
    "kv_cache_bytes",
    "peak_activation_bytes",
    "weight_bytes",
]


def weight_bytes(*, P: int, b: int) -> int:
    """``P * b``: parameters times bytes per element."""
    return P * b


def kv_bytes_per_token(*, L: int, H_kv: int, D_h: int, b: int) -> int:
    """``2 * L * H_kv * D_h * b``: K and V of every layer for one cached token of one sequence."""
    return 2 * L * H_kv * D_h * b


def kv_bytes_per_token_for(config: DeepseekOCRConfig, *, dtype: str = "bf16") -> int:
    """:func:`kv_bytes_per_token` with ``L``, ``H_kv``, ``D_h`` from ``config`` and ``b`` from ``dtype``."""
    return kv_bytes_per_token(
        L=config.num_hidden_layers,
        H_kv=config.num_key_value_heads,
        D_h=config.head_dim,
        b=BYTES_PER_ELEMENT[normalize_dtype(dtype)],
    )


def final_cache_tokens(*, S: int, N: int) -> int:
    """``S + N - 1``: cache length after ``N`` generated tokens (the first comes from prefill, the last is not fed
    back)."""
    if S < 1 or N < 1:
        raise ValueError(f"need S >= 1 and N >= 1, got S={S}, N={N}")
    return S + N - 1


def kv_cache_bytes(*, L: int, H_kv: int, D_h: int, b: int, S: int, N: int, B: int = 1) -> int:
    """``2 * L * H_kv * D_h * b * (S + N - 1) * B``: the whole cache at its final length, counted once."""
    return kv_bytes_per_token(L=L, H_kv=H_kv, D_h=D_h, b=b) * final_cache_tokens(S=S, N=N) * B


def peak_activation_bytes(live_bytes: Iterable[int]) -> int:
    """``max`` over the live-set sizes seen during the run (0 for none): a peak, never a sum."""
    return max(live_bytes, default=0)


@frozen(kw_only=True)
class MemoryFootprint:
    """What one batch holds on the device at its peak."""

    weights_bytes: int = field(metadata={"help": "parameters (shared by the batch)"})
    kv_cache_bytes: int = field(metadata={"help": "KV cache at its final length, whole batch"})
    peak_activation_bytes: int = field(metadata={"help": "largest live activation set, whole batch"})
    batch_size: int = field(default=1, metadata={"help": "B"})

    @property
    def total_bytes(self) -> int:
        """``weights + KV + peak activations``."""
        return self.weights_bytes + self.kv_cache_bytes + self.peak_activation_bytes

    @property
    def per_sequence_bytes(self) -> float:
        """KV + activations of one sequence: what each extra batch entry adds."""
        return (self.kv_cache_bytes + self.peak_activation_bytes) / self.batch_size


@frozen(kw_only=True)
class CapacityCheck:
    """Whether a footprint fits a device, and the largest batch that would."""

    device_id: str
    capacity_bytes: int
    required_bytes: int
    fits: bool
    max_batch: int = field(metadata={"help": "largest B whose footprint fits (0: not even one sequence)"})

    @property
    def headroom_bytes(self) -> int:
        """Capacity minus requirement (negative when it does not fit)."""
        return self.capacity_bytes - self.required_bytes


def capacity_check(footprint: MemoryFootprint, device: DeviceSpec) -> CapacityCheck:
    """``fits = total <= capacity``; ``max_batch = floor((capacity - weights) / per-sequence bytes)``."""
    capacity = device.memory_capacity_bytes
    free = capacity - footprint.weights_bytes
    per_seq = footprint.per_sequence_bytes
    if free < 0:
        max_batch = 0
    elif per_seq <= 0:
        max_batch = 2**31 - 1  # nothing grows with the batch: only the weights bound it
    else:
        max_batch = int(free // per_seq)
    return CapacityCheck(
        device_id=device.device_id,
        capacity_bytes=capacity,
        required_bytes=footprint.total_bytes,
        fits=footprint.total_bytes <= capacity,
        max_batch=max_batch,
    )


def footprint_at_dtype(
    *,
    weight_bytes: int,
    kv_cache_bytes: int,
    peak_activation_bytes: int,
    batch_size: int,
    counted_dtype: str,
    dtype: str,
) -> MemoryFootprint:
    """The one memory function of ``analyze`` and ``sweep``: counts made at ``counted_dtype`` (the analytic model's
    weights, final-length KV cache and activation peak, whole batch) moved to ``dtype``'s width with
    :func:`~llm_perf_opt.core.counts.rescale_bytes`.  Same inputs, same GB and same max batch in both commands."""
    counted = BYTES_PER_ELEMENT[normalize_dtype(counted_dtype)]
    target = BYTES_PER_ELEMENT[normalize_dtype(dtype)]
    return MemoryFootprint(
        weights_bytes=rescale_bytes(weight_bytes, counted=counted, target=target),
        kv_cache_bytes=rescale_bytes(kv_cache_bytes, counted=counted, target=target),
        peak_activation_bytes=rescale_bytes(peak_activation_bytes, counted=counted, target=target),
        batch_size=batch_size,
    )
