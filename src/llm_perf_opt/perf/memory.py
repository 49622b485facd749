"""Device memory: weights, KV cache (counted once), peak activations (a max), and the capacity check.

* Weights: ``P * b`` bytes for ``P`` parameters stored at ``b`` bytes each (base model, bf16:
  3,336,106,240 * 2 = 6,672,212,480 B).
* KV cache: ``2 * L * H_kv * D_h * b`` bytes per cached token per sequence (base, bf16: 2*12*10*128*2 = 61,440 B).
  After generating ``N`` tokens from a prompt of ``S`` the cache holds ``S + N - 1`` tokens (the last token is never
  fed back) - the *final* length, counted once: the prefill context is part of it, never added a second time.
* Peak activations: the largest live set at any one point of the run - a max over steps, never a sum over layers.
* Total = weights + KV + peak activations. Left out of the total: CUDA context, allocator fragmentation and
  workspaces (cuBLAS, attention), the transient copy a growing ``torch.cat`` cache makes (upstream re-allocates the
  cache each step). Those are documented constants below (:class:`ProcessOverhead`, with sources) that
  :func:`largest_batch` can include; the serving runtimes' memory budgets are :data:`RUNTIME_BUDGETS`.

Scaling with batch ``B``: weights are shared; KV and activations are per sequence (linear in ``B``).
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core.counts import rescale_bytes
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec, normalize_dtype

__all__ = [
    "ALLOCATOR_BLOCK",
    "ALLOCATOR_LARGE_SEGMENT",
    "ALLOCATOR_SMALL_SEGMENT",
    "CUBLASLT_WORKSPACE_HOPPER",
    "CUBLAS_WORKSPACE",
    "CUDA_CONTEXT",
    "FRAGMENTATION_FRACTION",
    "NO_OVERHEAD",
    "RUNTIME_BUDGETS",
    "CapacityCheck",
    "MemoryConstant",
    "MemoryFootprint",
    "MiB",
    "ProcessOverhead",
    "RuntimeMemoryBudget",
    "allocator_block_bytes",
    "allocator_segment_bytes",
    "capacity_check",
    "final_cache_tokens",
    "footprint_at_dtype",
    "kv_bytes_per_token",
    "kv_bytes_per_token_for",
    "kv_cache_bytes",
    "kv_pool_bytes",
    "kv_pool_tokens",
    "largest_batch",
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


# -- beyond the tensors: what a CUDA process holds besides weights, KV cache and live activations -------------------

MiB = 1 << 20
"""Bytes in a mebibyte (allocator sizes are binary)."""


@frozen(kw_only=True)
class MemoryConstant:
    """A documented memory figure: what it is, how many bytes, where the number comes from."""

    name: str = field(metadata={"help": "what the bytes are"})
    nbytes: int = field(metadata={"help": "bytes"})
    source: str = field(metadata={"help": "where the number comes from (URL or file)"})
    note: str = field(default="", metadata={"help": "conditions the number holds under"})


CUDA_CONTEXT = MemoryConstant(
    name="CUDA context (driver, lazily loaded kernels) per process and GPU",
    nbytes=426 * MiB,
    source="https://github.com/unslothai/unsloth-zoo/pull/1053 (426 MiB in nvidia-smi after creating the context, "
    "PyTorch 2.10 + CUDA 13.0, RTX 6000 Ada); https://github.com/pytorch/pytorch/pull/86509 (287,047,680 B with "
    "CUDA_MODULE_LOADING=LAZY, 666,632,192 B without); https://github.com/pytorch/pytorch/issues/109888 (~400 MB)",
    note="outside the PyTorch allocator: max_memory_allocated never shows it; grows with every library whose kernels "
    "are loaded (cuDNN, NCCL); 0.3-0.7 GB across the sources",
)

CUBLAS_WORKSPACE = MemoryConstant(
    name="cuBLAS workspace per handle and stream (PyTorch default :4096:2:16:8)",
    nbytes=4096 * 1024 * 2 + 16 * 1024 * 8,
    source="https://discuss.pytorch.org/t/torch-cuda-memory-snapshot-shows-an-unexpected-8519680b-memory-allocation-"
    "during-matrix-multiplication/178671 (8,519,680 B allocated at the first matmul)",
    note="allocated through the caching allocator (it shows in max_memory_allocated once a matmul ran)",
)

CUBLASLT_WORKSPACE_HOPPER = MemoryConstant(
    name="cuBLASLt workspace on compute capability 9.x (H100, H200)",
    nbytes=32 * MiB,
    source="https://github.com/pytorch/pytorch/pull/120925 (NVIDIA's recommended 32 MiB for Hopper; 4 MiB for "
    "Ampere with >= 24 GB, 1 MiB otherwise)",
    note="through the caching allocator; one per handle and stream",
)

ALLOCATOR_BLOCK = MemoryConstant(
    name="caching-allocator block size: every request is rounded up to a multiple of this",
    nbytes=512,
    source="torch/include/c10/core/AllocatorConfig.h (kMinBlockSize; PyTorch 2.13)",
)

ALLOCATOR_SMALL_SEGMENT = MemoryConstant(
    name="caching-allocator segment for requests of at most 1 MiB",
    nbytes=2 * MiB,
    source="torch/include/c10/core/AllocatorConfig.h (kSmallBuffer, kSmallSize; PyTorch 2.13)",
)

ALLOCATOR_LARGE_SEGMENT = MemoryConstant(
    name="caching-allocator segment for requests of 1-10 MiB; larger ones get their own, rounded up to 2 MiB",
    nbytes=20 * MiB,
    source="torch/include/c10/core/AllocatorConfig.h (kLargeBuffer, kMinLargeAlloc, kRoundLarge; PyTorch 2.13)",
)

FRAGMENTATION_FRACTION = 0.05
"""Allowance for memory the caching allocator holds but cannot hand out (reserved minus allocated), as a fraction
of the allocated bytes.  An allowance, not a measurement: the one DeepSeek-OCR(-2) out-of-memory report found with
numbers shows 97.46 MiB reserved but unallocated beside 6.68 GiB allocated (1.4%;
https://github.com/th1nhhdk/local_ai_ocr/issues/11); long-running servers with changing shapes fragment more, and
``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` fragments less."""


def allocator_block_bytes(*, n: int) -> int:
    """``ceil(n / 512) * 512``: what the caching allocator counts in ``memory_allocated`` for an ``n``-byte request."""
    block = ALLOCATOR_BLOCK.nbytes
    return -(-n // block) * block


def allocator_segment_bytes(*, n: int) -> int:
    """The segment ``cudaMalloc`` gets when no cached block fits an ``n``-byte request: 2 MiB (n <= 1 MiB), 20 MiB
    (n < 10 MiB), else ``n`` rounded up to 2 MiB (PyTorch's caching allocator; small segments are shared by many
    small blocks)."""
    if n <= MiB:
        return ALLOCATOR_SMALL_SEGMENT.nbytes
    if n < 10 * MiB:
        return ALLOCATOR_LARGE_SEGMENT.nbytes
    return -(-n // (2 * MiB)) * (2 * MiB)


@frozen(kw_only=True)
class ProcessOverhead:
    """Device memory of one CUDA process besides weights, KV cache and live activations."""

    context_bytes: int = field(default=CUDA_CONTEXT.nbytes, metadata={"help": "CUDA context (outside the allocator)"})
    workspace_bytes: int = field(
        default=CUBLAS_WORKSPACE.nbytes + CUBLASLT_WORKSPACE_HOPPER.nbytes,
        metadata={"help": "cuBLAS + cuBLASLt workspaces of one stream (attention kernels use their own outputs)"},
    )
    fragmentation_fraction: float = field(
        default=FRAGMENTATION_FRACTION, metadata={"help": "reserved-but-unallocated allowance, x allocated bytes"}
    )

    def bytes_for(self, *, allocated: int) -> int:
        """``context + workspaces + fragmentation * allocated``."""
        return self.context_bytes + self.workspace_bytes + int(self.fragmentation_fraction * allocated)

    def describe(self) -> str:
        return (
            f"CUDA context {self.context_bytes / MiB:,.0f} MiB + cuBLAS/cuBLASLt workspaces "
            f"{self.workspace_bytes / MiB:,.1f} MiB + {self.fragmentation_fraction:.0%} of the allocated bytes for "
            "allocator fragmentation"
        )


NO_OVERHEAD = ProcessOverhead(context_bytes=0, workspace_bytes=0, fragmentation_fraction=0.0)
"""Tensors only (a CPU run, or a budget that already excludes the process overhead)."""


def largest_batch(*, M: int, W: int, m_seq: int, overhead: ProcessOverhead = NO_OVERHEAD) -> int:
    """``max B`` with ``W + B * m_seq + overhead(W + B * m_seq) <= M``: the largest batch that fits a budget ``M``.

    ``W`` weights, ``m_seq`` the bytes one sequence adds at the run's peak (KV cache + activations + inputs, which
    grow linearly with the batch). Left out: anything that does not scale linearly (a batch-independent buffer
    counted in ``m_seq`` makes the answer conservative). 0 when not even one sequence fits.
    """
    if m_seq <= 0:
        raise ValueError(f"m_seq must be positive, got {m_seq}")
    f = overhead.fragmentation_fraction
    free = M - overhead.context_bytes - overhead.workspace_bytes - (1 + f) * W
    return max(int(free // ((1 + f) * m_seq)), 0)


# -- serving runtimes: how they split the device ---------------------------------------------------------------------


@frozen(kw_only=True)
class RuntimeMemoryBudget:
    """How a serving runtime sizes its KV cache: data for the runtime models (torch-free)."""

    runtime: str = field(metadata={"help": "runtime id"})
    memory_utilization: float | None = field(
        metadata={"help": "fraction of device memory the runtime may use (None: chosen at start-up or no pool)"}
    )
    kv_block_tokens: int | None = field(metadata={"help": "tokens per KV-cache block/page (None: no paged pool)"})
    cuda_graph_bytes: int | None = field(
        metadata={"help": "memory CUDA graphs take (None: measured at start-up, logged by the runtime)"}
    )
    kv_rule: str = field(metadata={"help": "how the KV pool is sized"})
    source: str = field(metadata={"help": "where the defaults come from"})


RUNTIME_BUDGETS = {
    "hf-eager": RuntimeMemoryBudget(
        runtime="hf-eager",
        memory_utilization=None,
        kv_block_tokens=None,
        cuda_graph_bytes=0,
        kv_rule="no pool: each request's cache is allocated as it grows (the built-in model preallocates S + N - 1)",
        source="upstream DeepSeek-OCR infer() with transformers generate(); no CUDA graphs",
    ),
    "vllm": RuntimeMemoryBudget(
        runtime="vllm",
        memory_utilization=0.9,
        kv_block_tokens=16,
        cuda_graph_bytes=None,
        kv_rule="KV pool = utilization x total - weights - profiled peak activations - non-torch memory; "
        "blocks = floor(pool / (block_tokens x KV bytes per token))",
        source="https://docs.vllm.ai/en/latest/configuration/conserving_memory/ (gpu_memory_utilization 0.9, "
        "block_size 16 on CUDA); log lines 'Available KV cache memory', 'Graph capturing finished ... took X GiB'",
    ),
    "sglang": RuntimeMemoryBudget(
        runtime="sglang",
        memory_utilization=None,
        kv_block_tokens=1,
        cuda_graph_bytes=None,
        kv_rule="mem_fraction_static x total holds weights + KV pool; the rest is left for activations and CUDA graphs",
        source="https://docs.sglang.ai/advanced_features/server_arguments.html (mem_fraction_static chosen from the "
        "GPU memory when not given; page_size 1)",
    ),
}
"""Default memory budgets per serving runtime (see each entry's source)."""


def kv_pool_bytes(*, M: int, u: float, W: int, A: int, X: int) -> int:
    """``u * M - W - A - X``: vLLM's KV pool - the utilization share of device memory ``M`` minus weights ``W``,
    the profiled activation peak ``A`` and memory outside the allocator ``X`` (CUDA context, NCCL)."""
    return int(u * M) - W - A - X


def kv_pool_tokens(*, pool_bytes: int, kv_per_token: int, block_tokens: int) -> int:
    """Tokens the pool holds: ``floor(pool / (block_tokens * kv_per_token)) * block_tokens``."""
    blocks = pool_bytes // (block_tokens * kv_per_token)
    return max(blocks, 0) * block_tokens
