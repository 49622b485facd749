"""Scheduler and cache settings of each runtime, with the runtime's own defaults and where they come from.

vLLM (V1 engine; ``vllm/engine/arg_utils.py`` ``EngineArgs.get_batch_defaults`` and ``vllm/config`` ``CacheConfig`` /
``SchedulerConfig``, read at v0.11):

* ``block_size`` 16 (``CacheConfig``), ``gpu_memory_utilization`` 0.9 (``CacheConfig``).
* ``max_num_batched_tokens`` / ``max_num_seqs`` depend on the device and the entry point: a GPU with >= 70 GiB
  that is not an A100 gets 8192 / 1024 behind the OpenAI server (16384 / 1024 for the offline ``LLM`` class);
  every other GPU gets 2048 / 256 (8192 / 256 offline). The simulator models the server (``vllm serve``).
* V1 always chunks prefills and schedules running requests (decodes) before waiting ones, in one mixed batch.
* KV cache = ``gpu_memory_utilization x capacity - weights - peak activations of the profiling run - non-torch
  memory``; V1 captures CUDA graphs after sizing the cache, inside the remaining ``1 - utilization`` headroom.

SGLang (``python/sglang/srt/server_args.py`` ``ServerArgs`` and ``_handle_gpu_memory_settings``, read at v0.5):

* ``page_size`` 1; ``chunked_prefill_size`` and ``cuda_graph_max_bs`` by device memory: < 20 GiB 2048 / 8,
  < 35 GiB 2048 / 24, < 60 GiB 4096 / 32, < 90 GiB 8192 / 256, < 160 GiB 8192 / 256, else 16384 / 512.
* ``mem_fraction_static = (capacity - reserved) / capacity`` with ``reserved = 512 MiB + 1.5 MiB x
  max(chunked_prefill_size, 2048) + 2 MiB x cuda_graph_max_bs`` (at least 10 GiB above 60 GiB of memory); it covers
  weights + KV pool. Its VLM adjustment (a few percent less for a large ViT) is left out.
* Prefill and decode run as separate batches (``enable_mixed_chunk`` off); new requests are admitted while
  ``new_token_ratio`` (0.7 initially) x min(max_new_tokens, 4096) future tokens per running request still fit.
  The decay of ``new_token_ratio`` and retraction ordering are left out; ``max_running_requests`` is capped at 4096
  (SGLang's request-pool ceiling) and otherwise left to memory.

Hugging Face (``hf-eager``, ``hf-flash``, ``hf-cuda-graph``): ``model.generate`` has no scheduler - one static batch
(default one request, as upstream's ``infer``) runs prefill then decode to its longest member before the next starts.
"""

from __future__ import annotations

from typing import Any

from attrs import asdict, field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec

__all__ = ["GIB", "MIB", "RUNTIMES", "SchedulerSettings", "default_settings"]

RUNTIMES: tuple[str, ...] = ("vllm", "sglang", "hf-eager", "hf-flash", "hf-cuda-graph")
"""Runtimes ``simulate`` and ``plan`` accept."""

GIB = 1 << 30
MIB = 1 << 20


@frozen(kw_only=True)
class SchedulerSettings:
    """How one runtime schedules iterations and sizes its KV cache."""

    runtime: str = field(metadata={"help": "vllm, sglang or an hf-* runtime"})
    max_num_seqs: int = field(metadata={"help": "most requests running at once"})
    max_num_batched_tokens: int = field(metadata={"help": "token budget of one iteration (chunk size for SGLang)"})
    block_size: int = field(metadata={"help": "KV cache block (page) size in tokens"})
    memory_fraction: float = field(
        metadata={"help": "vLLM gpu_memory_utilization / SGLang mem_fraction_static (share of device memory)"}
    )
    mixed_batches: bool = field(default=True, metadata={"help": "prefill chunks run beside decodes (vLLM V1)"})
    static_batching: bool = field(default=False, metadata={"help": "a new batch starts only when the last ends (HF)"})
    admission_reserve_ratio: float = field(
        default=0.0, metadata={"help": "SGLang new_token_ratio: future tokens reserved per running request"}
    )
    admission_reserve_clip: int = field(default=4096, metadata={"help": "SGLang clip of max_new_tokens estimates"})
    cuda_graph_max_bs: int = field(default=0, metadata={"help": "largest decode batch captured in a CUDA graph"})
    reserved_bytes: int = field(
        default=0, metadata={"help": "memory held back from weights + KV besides the fraction (activations etc.)"}
    )
    source: str = field(default="", metadata={"help": "where the defaults come from"})

    def check(self) -> None:
        """One :class:`UserError` per bound a person can break with a flag."""
        if self.max_num_seqs < 1:
            raise UserError(f"--max-num-seqs must be >= 1, got {self.max_num_seqs}")
        if self.max_num_batched_tokens < self.max_num_seqs and self.mixed_batches:
            raise UserError(
                f"--max-num-batched-tokens ({self.max_num_batched_tokens}) must be >= --max-num-seqs "
                f"({self.max_num_seqs}), as vLLM requires: every running request decodes one token per iteration; "
                f"raise --max-num-batched-tokens to {self.max_num_seqs} or more, or lower --max-num-seqs"
            )
        if not 0.0 < self.memory_fraction <= 1.0:
            raise UserError(f"--gpu-memory-utilization must be in (0, 1], got {self.memory_fraction}")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return asdict(self)


def _vllm(device: DeviceSpec) -> SchedulerSettings:
    big = device.memory_capacity_bytes >= 70 * GIB and "a100" not in device.device_id.lower()
    return SchedulerSettings(
        runtime="vllm",
        max_num_seqs=1024 if big else 256,
        max_num_batched_tokens=8192 if big else 2048,
        block_size=16,
        memory_fraction=0.9,
        source=(
            "vLLM v0.11 EngineArgs.get_batch_defaults (OpenAI server; >= 70 GiB and not A100: 8192 tokens / 1024 "
            "seqs, else 2048 / 256), CacheConfig block_size 16, gpu_memory_utilization 0.9"
        ),
    )


_SGLANG_TIERS: tuple[tuple[float, int, int], ...] = (
    (20, 2048, 8),
    (35, 2048, 24),
    (60, 4096, 32),
    (90, 8192, 256),
    (160, 8192, 256),
)


def _sglang(device: DeviceSpec) -> SchedulerSettings:
    gpu_mib = device.memory_capacity_bytes / MIB
    chunk, graph_bs = 16384, 512
    for limit_gib, tier_chunk, tier_bs in _SGLANG_TIERS:
        if gpu_mib < limit_gib * 1024:
            chunk, graph_bs = tier_chunk, tier_bs
            break
    reserved_mib = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + 1 / 8 * 1024  # tp_size = pp_size = 1
    if gpu_mib > 60 * 1024:
        reserved_mib = max(reserved_mib, 10 * 1024)
    fraction = round((gpu_mib - reserved_mib) / gpu_mib, 3)
    return SchedulerSettings(
        runtime="sglang",
        max_num_seqs=4096,
        max_num_batched_tokens=chunk,
        block_size=1,
        memory_fraction=fraction,
        mixed_batches=False,
        admission_reserve_ratio=0.7,
        cuda_graph_max_bs=graph_bs,
        source=(
            "SGLang v0.5 ServerArgs._handle_gpu_memory_settings (chunked_prefill_size, cuda_graph_max_bs and "
            "mem_fraction_static by device memory), page_size 1, init new_token_ratio 0.7, clip 4096"
        ),
    )


def _hf(runtime: str) -> SchedulerSettings:
    return SchedulerSettings(
        runtime=runtime,
        max_num_seqs=1,
        max_num_batched_tokens=1 << 30,
        block_size=1,
        memory_fraction=1.0,
        mixed_batches=False,
        static_batching=True,
        source="transformers generate: one static batch at a time (upstream DeepSeek-OCR infer runs one page)",
    )


def default_settings(
    runtime: str,
    device: DeviceSpec,
    *,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    gpu_memory_utilization: float | None = None,
) -> SchedulerSettings:
    """The runtime's own defaults on ``device``, with any flag the user gave in their place."""
    if runtime == "vllm":
        base = _vllm(device)
    elif runtime == "sglang":
        base = _sglang(device)
    elif runtime in RUNTIMES:
        base = _hf(runtime)
    else:
        raise UserError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    changes: dict[str, Any] = {}
    if max_num_seqs is not None:
        changes["max_num_seqs"] = max_num_seqs
    if max_num_batched_tokens is not None:
        changes["max_num_batched_tokens"] = max_num_batched_tokens
    if gpu_memory_utilization is not None:
        changes["memory_fraction"] = gpu_memory_utilization
    settings = SchedulerSettings(**{**asdict(base, recurse=False), **changes})
    settings.check()
    return settings
