"""The runtimes: data plus small rules (kernel maps, launch and host costs, which stages run in CUDA graphs).

Every number here has its basis in the rule's ``source`` or in :data:`HOST_BASIS`; two SGLang host constants are
fitted on one published point each (:mod:`.fit`, role fit), nothing else.  Kernel counts per call are read from each
runtime's own model code (versions named in :data:`SOURCES`).  What no rule covers is counted eager (the traced ops,
one kernel each): the vision encoders and the projector for every runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.runtimes.kernel_map import AS_COUNTED, UnitRule

__all__ = ["HOST_BASIS", "RUNTIMES", "SOURCES", "Runtime", "get_runtime", "runtime_ids"]

SOURCES: Mapping[str, str] = {
    "vllm": (
        "vllm-project/vllm vllm/model_executor/models/deepseek_v2.py @002d6073 (DeepseekAttention: QKVParallelLinear, "
        "get_rope, Attention, RowParallelLinear; DeepseekV2MLP: MergedColumnParallelLinear + SiluAndMul; "
        "DeepseekV2MoE: GateLinear + FusedMoE with shared experts) and deepseek_ocr.py @029329a8 (SAM/CLIP/projector "
        "run as PyTorch modules; the language model is the registered DeepSeek-V2 model)"
    ),
    "sglang": (
        "sgl-project/sglang python/sglang/srt/models/deepseek_ocr.py and deepseek_v2.py (0.5.x: DeepseekV2AttentionMHA "
        "path for use_mla=false, fused_moe_triton, triton decode attention with a split-k reduce on ROCm, "
        "fused_add_rmsnorm; CUDA/HIP graphs for decode only, cuda_graph_max_bs)"
    ),
    "hf-cuda-graph": (
        "transformers docs 'Optimizing inference' / static cache + torch.compile(mode='reduce-overhead'): decode "
        "captured in CUDA graphs, inductor fuses pointwise and reduction chains (norms, rotary, SiLU*mul); "
        "the MoE's data-dependent expert loop (.cpu() of expert counts / nonzero) breaks the graph and runs eager"
    ),
}

_VLLM = SOURCES["vllm"]
_SGL = SOURCES["sglang"]
_HFG = SOURCES["hf-cuda-graph"]


def _vllm_rules(source: str, attn_kernels: int, attn_names: tuple[str, ...]) -> dict[str, UnitRule]:
    norm = UnitRule(kernels_per_call=1, kernels=("fused_add_rms_norm",), source=source)
    attn = UnitRule(kernels_per_call=attn_kernels, kernels=attn_names, source=source)
    mlp = UnitRule(kernels_per_call=3, kernels=("gate_up GEMM", "silu_and_mul", "down GEMM"), source=source)
    moe = UnitRule(
        kernels_per_call=11,
        kernels=(
            "gate GEMM",
            "topk_softmax",
            "moe_align_block_size",
            "fused_moe w13 (grouped GEMM)",
            "silu_and_mul",
            "fused_moe w2 (grouped GEMM)",
            "moe_sum",
            "shared gate_up GEMM",
            "shared silu_and_mul",
            "shared down GEMM",
            "add shared + routed",
        ),
        source=source,
    )
    nothing = UnitRule(kernels_per_call=0, kernels=(), source=source + "; residual add fused into the next norm")
    container = UnitRule(
        kernels_per_call=2, kernels=("embedding merge / logits", "greedy sample"), source=source, scope="own"
    )
    gemm = UnitRule(kernels_per_call=1, kernels=("GEMM",), source=source)
    embed = UnitRule(kernels_per_call=1, kernels=("embedding gather",), source=source)
    rotary_table = UnitRule(kernels_per_call=0, kernels=(), source=source + "; cos/sin from a cached table")
    return {
        # v1 (remote-code class names)
        "DeepseekV2RMSNorm": norm,
        "LlamaAttention": attn,
        "DeepseekV2MLP": mlp,
        "DeepseekV2MoE": moe,
        "DeepseekV2DecoderLayer": UnitRule(kernels_per_call=0, source=nothing.source, scope="own"),
        "DeepseekOCRForCausalLM": container,
        "DeepseekOCRModel": container,
        # OCR-2 (transformers class names)
        "DeepseekOcr2TextRMSNorm": norm,
        "DeepseekOcr2TextAttention": attn,
        "DeepseekOcr2TextMLP": mlp,
        "DeepseekOcr2TextMoe": moe,
        "DeepseekOcr2TextDecoderLayer": UnitRule(kernels_per_call=0, source=nothing.source, scope="own"),
        "DeepseekOcr2ForConditionalGeneration": container,
        "DeepseekOcr2Model": container,
        "DeepseekOcr2TextModel": container,
        "DeepseekOcr2TextRotaryEmbedding": rotary_table,
        # both
        "Linear": gemm,
        "Embedding": embed,
    }


def _hf_graph_rules() -> dict[str, UnitRule]:
    norm = UnitRule(kernels_per_call=1, kernels=("inductor add+rmsnorm",), source=_HFG)
    attn = UnitRule(
        kernels_per_call=8,
        kernels=(
            "q GEMM",
            "k GEMM",
            "v GEMM",
            "inductor rotary",
            "cache index_copy k",
            "cache index_copy v",
            "sdpa",
            "o GEMM",
        ),
        source=_HFG,
    )
    mlp = UnitRule(kernels_per_call=4, kernels=("gate GEMM", "up GEMM", "inductor silu*mul", "down GEMM"), source=_HFG)
    eager_moe = UnitRule(kernels_per_call=AS_COUNTED, source=_HFG + " (MoE: eager, as traced)", graphable=False)
    own0 = UnitRule(kernels_per_call=0, source=_HFG + "; residual add fused into the norm", scope="own")
    container = UnitRule(kernels_per_call=2, kernels=("logits cast", "argmax"), source=_HFG, scope="own")
    return {
        "DeepseekV2RMSNorm": norm,
        "LlamaAttention": attn,
        "DeepseekV2MLP": mlp,
        "DeepseekV2MoE": eager_moe,
        "DeepseekV2DecoderLayer": own0,
        "DeepseekOCRForCausalLM": container,
        "DeepseekOCRModel": container,
        "DeepseekOcr2TextRMSNorm": norm,
        "DeepseekOcr2TextAttention": attn,
        "DeepseekOcr2TextMLP": mlp,
        "DeepseekOcr2TextMoe": eager_moe,
        "DeepseekOcr2TextDecoderLayer": own0,
        "DeepseekOcr2ForConditionalGeneration": container,
        "DeepseekOcr2Model": container,
        "DeepseekOcr2TextModel": container,
        "DeepseekOcr2TextRotaryEmbedding": UnitRule(kernels_per_call=1, source=_HFG, graphable=True),
        "Linear": UnitRule(kernels_per_call=1, kernels=("GEMM",), source=_HFG),
        "Embedding": UnitRule(kernels_per_call=1, kernels=("embedding",), source=_HFG),
    }


@frozen(kw_only=True, eq=False)
class Runtime:
    """One inference runtime: its kernel map, where it uses CUDA graphs and what the host costs (compared and hashed
    by identity: the catalog holds one of each)."""

    runtime_id: str
    description: str
    rules: Mapping[str, UnitRule] = field(factory=dict, metadata={"help": "module class -> kernels (decoder)"})
    graph_decode: bool = field(default=False, metadata={"help": "decode-only iterations replay a CUDA graph"})
    graph_mixed: str = field(
        default="none", metadata={"help": "iterations with prefill: none (eager) or piecewise (all but attention)"}
    )
    max_graph_batch: int = field(default=0, metadata={"help": "largest decode batch captured in a graph"})
    host_per_kernel_s: float = field(default=10e-6, metadata={"help": "host time to launch one kernel outside graphs"})
    step_host_s: float = field(default=0.0, metadata={"help": "scheduler/input-prep/sampling host time per iteration"})
    request_overhead_s: float = field(
        default=0.0, metadata={"help": "per-request time outside the model (API, tokenizer, first schedule)"}
    )
    prefill_host_s: float = field(
        default=0.0,
        metadata={
            "help": "host time of an iteration that prefills, beyond its kernel launches (batch building, the eager "
            "forward's Python); on the engine thread, so it stalls every sequence of that iteration"
        },
    )
    overlap: bool = field(default=True, metadata={"help": "host launches overlap device execution"})
    fused_moe: bool = field(
        default=False,
        metadata={
            "help": "routed experts run as one grouped Triton GEMM whose per-expert M tiles are padded "
            "(runtimes.moe_kernel); False: an expert loop that computes exactly its tokens"
        },
    )
    chunked_prefill: bool = field(
        default=False,
        metadata={
            "help": "prefills in chunks of a token budget with logits at each sequence's last position only, so "
            "its activation peak does not grow with the batch (the HF footprint analyze sizes is not its own)"
        },
    )
    attention: tuple[str, ...] = field(default=("flash", "eager"), metadata={"help": "attention kinds it runs"})
    unmapped: tuple[str, ...] = field(
        default=("vision", "projector"), metadata={"help": "stages counted eager (traced ops, one kernel each)"}
    )

    @property
    def is_baseline(self) -> bool:
        """hf-eager: today's op-by-op model, unchanged."""
        return not self.rules and not self.graph_decode

    def calibrated_by(self, *, profile_device: str, device_id: str) -> bool:
        """Whether a device profile fitted on ``profile_device`` calibrates this runtime's times on ``device_id``:
        only the baseline reads the profile (the other kernel models time with their own constants)."""
        return self.is_baseline and profile_device == device_id


HOST_BASIS: Mapping[str, str] = {
    "hf-eager": "the documented eager default: 10 us per kernel, added to the roofline (perf.efficiency)",
    "hf-flash": "as hf-eager; attention must be the fused flash kernel (transformers flash_attention_2)",
    "hf-cuda-graph": (
        "graph replay: no host cost per kernel, a device gap per kernel (hardware launch latency); eager MoE between "
        "graph segments at the eager 10 us per kernel; 0.2 ms per step of generate() bookkeeping (logits "
        "processors, stopping criteria, cache bookkeeping)"
    ),
    "vllm": (
        "V1 engine: decode replays a full CUDA graph (FULL_AND_PIECEWISE), mixed batches piecewise graphs with "
        "attention eager; 5 us per eager custom-op launch from the torch.compile'd wrapper; 0.15 ms per step of "
        "scheduler + input preparation + sampler bookkeeping (async scheduling overlaps part of it); 3 ms per "
        "request for the OpenAI server, tokenizer and multimodal processor"
    ),
    "sglang": (
        "decode in CUDA/HIP graphs (cuda_graph_max_bs), prefill eager with custom kernels launched from Python at "
        "~15 us each; per step 0.43 ms of host time (scheduler, sampling, output processing; fitted on the H200 "
        "OCR-2 TPOT point); a c=1 TTFT spends 17.8 ms beyond the prefill's kernels (fitted on the MI300X OCR TTFT "
        "point), of which 11.4 ms per prefill iteration on the scheduler thread (batch building and the eager "
        "forward's Python; stalls the decode batch; the split fitted on the MI300X c=100 throughput point) and "
        "6.4 ms per request outside the engine (HTTP server, tokenizer manager and detokenizer processes)"
    ),
}

_SGLANG_PREFILL_HOST_S = 11.4e-3
"""SGLang's host time per prefill iteration on the scheduler (fitted; see :data:`runtimes.fit.FITTED_ON`)."""


def _op_by_op(runtime_id: str, description: str, attention: tuple[str, ...]) -> Runtime:
    """A HuggingFace runtime that launches every traced op as one kernel, host and device in turn."""
    unmapped = ("vision", "projector", "prefill", "decode")
    return Runtime(
        runtime_id=runtime_id, description=description, overlap=False, attention=attention, unmapped=unmapped
    )


def _graphed(runtime_id: str, description: str, rules: Mapping[str, UnitRule], **facts: Any) -> Runtime:
    """A runtime with a kernel map that replays decode in CUDA graphs and runs flash attention only; ``facts``: the
    rest of its :class:`Runtime` fields (graph batch, host costs, fused MoE)."""
    return Runtime(
        runtime_id=runtime_id,
        description=description,
        rules=rules,
        graph_decode=True,
        attention=("flash",),
        **facts,
    )


RUNTIMES: Mapping[str, Runtime] = {
    "hf-eager": _op_by_op(
        "hf-eager", "HuggingFace transformers, eager PyTorch op by op (today's model, the default)", ("flash", "eager")
    ),
    "hf-flash": _op_by_op(
        "hf-flash",
        "HuggingFace transformers with flash_attention_2 (fused attention, everything else op by op)",
        ("flash",),
    ),
    "hf-cuda-graph": _graphed(
        "hf-cuda-graph",
        "HuggingFace static cache + torch.compile(mode='reduce-overhead'): decode in CUDA graphs",
        _hf_graph_rules(),
        max_graph_batch=256,
        host_per_kernel_s=10e-6,
        step_host_s=200e-6,
    ),
    "vllm": _graphed(
        "vllm",
        "vLLM V1 (fused kernels, paged flash attention, fused MoE, CUDA graphs)",
        _vllm_rules(_VLLM, 5, ("QKV GEMM", "rotary_embedding", "reshape_and_cache_flash", "flash_attn", "o GEMM")),
        graph_mixed="piecewise",
        max_graph_batch=512,
        fused_moe=True,
        chunked_prefill=True,
        host_per_kernel_s=5e-6,
        step_host_s=150e-6,
        request_overhead_s=3e-3,
    ),
    "sglang": _graphed(
        "sglang",
        "SGLang (fused kernels, radix/paged attention, fused MoE, CUDA graphs for decode)",
        _vllm_rules(
            _SGL,
            6,
            ("QKV GEMM", "rotary_embedding", "set_kv_buffer", "decode attention", "attention reduce", "o GEMM"),
        ),
        max_graph_batch=160,
        fused_moe=True,
        chunked_prefill=True,
        host_per_kernel_s=15e-6,
        step_host_s=430e-6,  # fitted: runtimes.fit.FITTED_ON["sglang.step_host_s"]
        # the 17.8 ms a c=1 TTFT spends beyond the prefill's kernels, split between the engine thread and outside it
        request_overhead_s=17.8e-3 - _SGLANG_PREFILL_HOST_S,  # fitted: FITTED_ON["sglang.request_overhead_s"]
        prefill_host_s=_SGLANG_PREFILL_HOST_S,  # fitted: runtimes.fit.FITTED_ON["sglang.prefill_host_s"]
    ),
}


def runtime_ids() -> tuple[str, ...]:
    """Known runtime ids, in catalog order."""
    return tuple(RUNTIMES)


def get_runtime(runtime_id: str) -> Runtime:
    """The runtime named ``runtime_id``; an unknown one is an :class:`UnknownIdError` listing the known ones."""
    try:
        return RUNTIMES[runtime_id]
    except KeyError:
        raise UnknownIdError("runtime", runtime_id, RUNTIMES) from None
