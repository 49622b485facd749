"""The KV cache a serving engine gets on one device: what is left of its memory share after weights and workspace.

``KV bytes = fraction x capacity - weights - activation workspace - non-torch memory`` (vLLM V1: ``fraction`` is
``gpu_memory_utilization``, the workspace is the peak of its profiling forward over ``max_num_batched_tokens`` tokens
and one encoder batch; CUDA graphs are captured after sizing, inside the ``1 - fraction`` headroom). SGLang's
``mem_fraction_static`` already excludes its reserved workspace (``settings.reserved_bytes`` = 0), and HF keeps no
pool: its cache grows inside whatever the weights leave.

Weights are the model's parameter bytes (:func:`llm_perf_opt.analytic.compose.model_weight_bytes`,
:func:`llm_perf_opt.analytic.ocr2_model_params` for DeepSeek-OCR-2); KV bytes per
token are ``2 * L * H_kv * D_h * b`` (:func:`llm_perf_opt.perf.memory.kv_bytes_per_token_for`). The decoder
workspace of a ``T``-token forward is ``T * b * (3 * h + 2 * I)`` (residual, normed input and attention output of
width ``h``, the dense layer's fused gate/up output of width ``2 * I``) plus fp32 logits of the sampled positions
(``max_num_seqs * V * 4``); the vision workspace is the analytic model's activation peak of one page's encoders.
Left out: allocator fragmentation, cuBLAS/attention workspaces beyond ``non_torch_bytes``, the encoder cache.
"""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from llm_perf_opt.analytic import analytic_costs, ocr2_analytic_costs, ocr2_model_params
from llm_perf_opt.analytic.compose import model_weight_bytes
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, DeviceSpec, normalize_dtype
from llm_perf_opt.perf.memory import kv_bytes_per_token_for
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix
from llm_perf_opt.serving.settings import GIB, SchedulerSettings
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

ModelConfig = DeepseekOCRConfig | DeepseekOCR2Config

__all__ = [
    "NON_TORCH_BYTES",
    "KvBudget",
    "ModelConfig",
    "decoder_of",
    "decoder_workspace_bytes",
    "kv_budget",
    "weights_of",
]

NON_TORCH_BYTES = GIB // 2
"""CUDA context, cuBLAS and NCCL buffers vLLM counts as non-torch memory during profiling (assumed 0.5 GiB)."""


def decoder_workspace_bytes(*, T: int, h: int, I: int, V: int, B_s: int, b: int) -> int:  # noqa: E741 (paper symbol)
    """``T * b * (3h + 2I) + B_s * V * 4``: live activations of a ``T``-token decoder forward at its widest point
    (the dense MLP's gate/up output beside three hidden-width tensors) plus fp32 logits of ``B_s`` sampled rows."""
    return T * b * (3 * h + 2 * I) + B_s * V * 4


@frozen(kw_only=True)
class KvBudget:
    """How the device's memory is split, and the KV pool in blocks."""

    capacity_bytes: int = field(metadata={"help": "device memory"})
    fraction: float = field(metadata={"help": "share of the device the engine may use"})
    weights_bytes: int = field(metadata={"help": "model parameters"})
    workspace_bytes: int = field(metadata={"help": "activation workspace + non-torch memory held back"})
    kv_bytes_per_token: int = field(metadata={"help": "2 * L * H_kv * D_h * b"})
    block_size: int = field(metadata={"help": "tokens per block"})
    blocks: int = field(metadata={"help": "KV blocks in the pool"})

    @property
    def kv_bytes(self) -> int:
        """Bytes of the pool (whole blocks)."""
        return self.blocks * self.block_size * self.kv_bytes_per_token

    @property
    def capacity_tokens(self) -> int:
        """Tokens the pool holds."""
        return self.blocks * self.block_size

    def as_dict(self) -> dict[str, Any]:
        """``weights_gb``, ``kv_cache_gb``, ``kv_capacity_tokens`` and the split (GB = 1e9 B, as analyze, sweep and
        compare print memory: docs/conventions.md section 3)."""
        return {
            "weights_gb": round(self.weights_bytes / 1e9, 4),
            "kv_cache_gb": round(self.kv_bytes / 1e9, 4),
            "kv_capacity_tokens": self.capacity_tokens,
            "workspace_gb": round(self.workspace_bytes / 1e9, 4),
            "device_gb": round(self.capacity_bytes / 1e9, 4),
            "memory_fraction": self.fraction,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "block_size": self.block_size,
            "kv_blocks": self.blocks,
        }


def _longest(lengths: int | LengthDistribution) -> int:
    return lengths if isinstance(lengths, int) else max(lengths.values)


def decoder_of(config: ModelConfig) -> DeepseekOCRConfig:
    """The language model's config (DeepSeek-OCR-2 keeps v1's decoder)."""
    return config.decoder if isinstance(config, DeepseekOCR2Config) else config


def weights_of(config: ModelConfig, *, b: int) -> int:
    """Every parameter in bytes (v1: :func:`model_weight_bytes`; OCR-2: :func:`ocr2_model_params` x ``b``)."""
    if isinstance(config, DeepseekOCR2Config):
        return ocr2_model_params(config) * b
    return model_weight_bytes(config, a=b)


def _vision_peak(config: ModelConfig, mix: RequestMix, b: int) -> int:
    w = mix.workload
    if w is None:
        return 0
    if isinstance(config, DeepseekOCR2Config) and isinstance(w, Ocr2Workload):
        tree = ocr2_analytic_costs(config, w, act_bytes=b)
    elif isinstance(config, DeepseekOCRConfig) and isinstance(w, Workload):
        tree = analytic_costs(config, w, act_bytes=b)
    else:
        raise UserError("the request mix's pages do not belong to the model (v1 page with OCR-2 or the reverse)")
    return int(tree.peak_activation_bytes.get("vision", 0))


def kv_budget(
    *, config: ModelConfig, device: DeviceSpec, dtype: str, settings: SchedulerSettings, mix: RequestMix
) -> KvBudget:
    """The KV pool ``settings.runtime`` builds on ``device`` for ``mix`` (see the module docstring)."""
    b = BYTES_PER_ELEMENT[normalize_dtype(dtype)]
    weights = weights_of(config, b=b)
    dec = decoder_of(config)
    if settings.runtime == "sglang":
        workspace = settings.reserved_bytes
    else:
        if settings.static_batching:  # HF: the whole batch prefills at once, logits over every position
            tokens = sampled = settings.max_num_seqs * (1 + mix.image_tokens + _longest(mix.prompt_tokens))
        else:
            tokens, sampled = settings.max_num_batched_tokens, settings.max_num_seqs
        decoder = decoder_workspace_bytes(
            T=tokens, h=dec.hidden_size, I=dec.intermediate_size, V=dec.vocab_size, B_s=sampled, b=b
        )
        workspace = max(decoder, _vision_peak(config, mix, b)) + NON_TORCH_BYTES
    per_token = kv_bytes_per_token_for(dec, dtype=dtype)
    kv_bytes = int(settings.memory_fraction * device.memory_capacity_bytes) - weights - workspace
    blocks = kv_bytes // (per_token * settings.block_size)
    if blocks < 1:
        raise UserError(
            f"{device.device_id}: no room for a KV cache: {settings.memory_fraction:g} x "
            f"{device.memory_capacity_bytes / GIB:.1f} GiB minus {weights / GIB:.2f} GiB of weights and "
            f"{workspace / GIB:.2f} GiB of workspace leaves {kv_bytes / GIB:.2f} GiB; raise --gpu-memory-utilization "
            "or lower --max-num-batched-tokens"
        )
    return KvBudget(
        capacity_bytes=device.memory_capacity_bytes,
        fraction=settings.memory_fraction,
        weights_bytes=weights,
        workspace_bytes=workspace,
        kv_bytes_per_token=per_token,
        block_size=settings.block_size,
        blocks=int(blocks),
    )
