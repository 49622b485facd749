"""One analysis request as a runtime runs it: stage seconds, what bounds each stage, and why decode is this slow.

``analyze --runtime R`` times its workload here (for every runtime but ``hf-eager``, which keeps the traced tree's
time).  The numbers come from the same :class:`~llm_perf_opt.runtimes.timer.RuntimeIterationTimer` the serving
simulator uses, so a request alone in the simulator gets the same TTFT and TPOT.

* batch ``B``: the prefill iteration holds ``B`` chunks of ``S`` tokens and ``B`` pages; each decode step ``B``
  sequences at context ``S + i``;
* ``text_only``: no page, ``S = prompt_tokens + 1`` (BOS and the prompt);
* the prefill stage includes the runtime's per-request time outside the model (server, tokenizer), since published
  TTFTs are measured by clients.
"""

from __future__ import annotations

from typing import Unpack

from attrs import field, frozen

from llm_perf_opt.perf.iteration import BatchComposition, PrefillChunk
from llm_perf_opt.perf.stages import StageTimes
from llm_perf_opt.runtimes.catalog import Runtime, get_runtime
from llm_perf_opt.runtimes.classes import class_of
from llm_perf_opt.runtimes.costs import check_supported, decoder_config, family_of
from llm_perf_opt.runtimes.decode_span import DecodeSpan, decode_span
from llm_perf_opt.runtimes.timer import ForwardTerms, LoneRequest, RuntimeIterationTimer, lone_request_timer

__all__ = ["ModuleShare", "RuntimeRun", "StageBound", "decode_breakdown", "runtime_run"]


@frozen(kw_only=True)
class StageBound:
    """One stage's time as the runtime runs it, split by what bounds it, with the kernels it launches and the DRAM
    bytes its (fused) kernels move.  ``compute_s + memory_s + overhead_s`` is the stage's time."""

    compute_s: float = field(metadata={"help": "roofline of the kernel groups where compute wins"})
    memory_s: float = field(metadata={"help": "roofline of the kernel groups where memory wins"})
    overhead_s: float = field(
        metadata={"help": "beyond the roofline: device gaps or host launches, host per step, time outside the model"}
    )
    kernels: float = field(metadata={"help": "kernels launched over the whole stage"})
    bytes: float = field(metadata={"help": "DRAM bytes moved over the whole stage"})

    @property
    def total_s(self) -> float:
        """The stage's seconds."""
        return self.compute_s + self.memory_s + self.overhead_s

    @classmethod
    def of(cls, terms: ForwardTerms, *, overlap: bool, times: float = 1.0, extra_s: float = 0.0) -> StageBound:
        """``times`` forwards of ``terms`` plus ``extra_s`` of host time outside them."""
        compute, memory, overhead = terms.split(overlap=overlap)
        return cls(
            compute_s=compute * times,
            memory_s=memory * times,
            overhead_s=overhead * times + extra_s,
            kernels=terms.kernels * times,
            bytes=terms.bytes * times,
        )

    def __add__(self, other: StageBound) -> StageBound:
        return StageBound(
            compute_s=self.compute_s + other.compute_s,
            memory_s=self.memory_s + other.memory_s,
            overhead_s=self.overhead_s + other.overhead_s,
            kernels=self.kernels + other.kernels,
            bytes=self.bytes + other.bytes,
        )


@frozen(kw_only=True)
class ModuleShare:
    """One group of modules in one decode step: kernels, bytes and seconds."""

    module: str
    kernels: float
    bytes: float
    seconds: float


@frozen(kw_only=True)
class RuntimeRun:
    """A request's time as ``runtime`` runs it."""

    runtime: Runtime
    stages: StageTimes
    text_only: bool
    seq_len: int = field(metadata={"help": "S the decoder prefills (prompt only when text_only)"})
    decode: ForwardTerms = field(metadata={"help": "one decode step at the middle context"})
    prefill: ForwardTerms = field(metadata={"help": "the prefill forward (all B chunks, no page)"})
    vision_bound: str = field(metadata={"help": "what bounds the vision encoders (launch or roofline)"})
    breakdown: tuple[ModuleShare, ...] = field(metadata={"help": "why decode is this slow, by module group"})
    batch_size: int
    bounds: dict[str, StageBound] = field(
        factory=dict,
        metadata={"help": "vision, projector, prefill, decode and root (end to end) split by what bounds them"},
    )

    @property
    def kernels_per_decode_step(self) -> float:
        """Kernels one decode step launches."""
        return self.decode.kernels

    @property
    def decode_device_s(self) -> float:
        """One decode step's device time at the middle context, what :attr:`breakdown`'s groups sum to: the roofline
        plus the device gaps (runtimes with overlap) or plus the host launches (op by op, added).  A host-bound step
        of a runtime with overlap takes longer (:meth:`ForwardTerms.seconds`)."""
        return self.decode.roofline_s + self.decode.gap_s + (0.0 if self.runtime.overlap else self.decode.launch_s)

    @property
    def bytes_per_token(self) -> float:
        """DRAM bytes per generated token (one step's bytes over its B tokens)."""
        return self.decode.bytes / max(self.batch_size, 1)


def _group(path: str, family: str, dense: int) -> str:
    cls = class_of(f"decode/{path}", family=family, first_k_dense_replace=dense) or ""
    if ".self_attn" in path:
        return "attention block (QKV, rotary, KV write, attention, output)"
    if ".mlp" in path:
        moe = ".experts" in path or ".gate" in path or ".shared_experts" in path or cls.endswith(("MoE", "Moe"))
        return "MoE block (router, experts, shared experts)" if moe else "dense MLP"
    if "layernorm" in path or path.endswith(".norm"):
        return "norms (+ residual adds)"
    if "embed_tokens" in path:
        return "embedding"
    if path == "lm_head":
        return "lm_head"
    return "logits / sampling / containers"


def decode_breakdown(
    timer: RuntimeIterationTimer, *, family: str, dense: int, contexts: tuple[int, ...]
) -> tuple[ModuleShare, ...]:
    """One decode step split by module group: each kernel group's roofline plus its kernels' device gap (or host
    launch time for op-by-op runtimes), largest first.  The groups sum to the step's device time; a host-bound step
    (see its bound) takes longer than that sum."""
    groups: dict[str, list[float]] = {}
    for key in timer.decode_rows:
        part = timer.decode_terms_of(key, contexts=contexts)
        slot = groups.setdefault(_group(key.partition("|")[0], family, dense), [0.0, 0.0, 0.0])
        slot[0] += part.kernels
        slot[1] += part.bytes
        slot[2] += part.roofline_s + part.gap_s + (0.0 if timer.runtime.overlap else part.launch_s)
    shares = [ModuleShare(module=g, kernels=v[0], bytes=v[1], seconds=v[2]) for g, v in groups.items()]
    return tuple(sorted(shares, key=lambda m: (-m.seconds, m.module)))


def runtime_run(**request: Unpack[LoneRequest]) -> RuntimeRun:
    """Stage seconds of ``workload`` (batch ``B``, ``N`` generated tokens) on ``runtime`` (see the module doc)."""
    runtime, workload = request["runtime"], request["workload"]
    chosen = get_runtime(runtime) if isinstance(runtime, str) else runtime
    check_supported(chosen, attention=request.get("attention", "flash"))
    text_only = request.get("text_only", False)
    timer, key, s = lone_request_timer(**request)
    b = workload.batch_size
    pages = 0 if text_only else 1
    first = BatchComposition(
        prefill=tuple(PrefillChunk(new_tokens=s, vision_pages=pages, vision_key=key) for _ in range(b))
    )
    vision, projector = timer.vision_split.get(key, (0.0, 0.0))
    prefill = timer.iteration_s(first) - b * (vision + projector) + chosen.request_overhead_s
    steps = workload.max_new_tokens - 1
    span = decode_span(timer, batch=b, seq_len=s, steps=steps)
    stages = StageTimes(
        vision_s=b * vision, projector_s=b * projector, prefill_s=prefill, decode_s=span.seconds, decode_steps=steps
    )
    bounds = _stage_bounds(timer, first, key=key, batch=b, span=span)
    mid = (s + max(steps, 1) // 2 + 1,) * b
    bound = "launch" if chosen.overlap else "launch + roofline"
    return RuntimeRun(
        runtime=chosen,
        stages=stages,
        text_only=text_only,
        seq_len=s,
        decode=timer.decode_terms(contexts=mid),
        prefill=timer.forward_terms(first),
        vision_bound=bound,
        breakdown=decode_breakdown(
            timer,
            family=family_of(request["config"]),
            dense=decoder_config(request["config"]).first_k_dense_replace,
            contexts=mid,
        ),
        batch_size=b,
        bounds=bounds,
    )


def _stage_bounds(
    timer: RuntimeIterationTimer, first: BatchComposition, *, key: str, batch: int, span: DecodeSpan
) -> dict[str, StageBound]:
    """Each stage's :class:`StageBound`: the encoders of ``batch`` pages, the prefill forward plus the per-request
    time outside the model, and every decode step at its own context (summed in closed form, not scaled from one
    step: :func:`~llm_perf_opt.runtimes.decode_span.decode_span`)."""
    overlap = timer.runtime.overlap
    out: dict[str, StageBound] = {}
    if key in timer.vision_terms:
        vision, projector = timer.vision_terms[key]
        out["vision"] = StageBound.of(vision, overlap=overlap, times=batch)
        out["projector"] = StageBound.of(projector, overlap=overlap, times=batch)
    out["prefill"] = StageBound.of(
        timer.forward_terms(first), overlap=overlap, extra_s=timer.runtime.request_overhead_s
    )
    decode = StageBound(
        compute_s=span.compute_s,
        memory_s=span.memory_s,
        overhead_s=span.overhead_s,
        kernels=span.kernels,
        bytes=span.bytes,
    )
    out["decode"] = decode
    root = decode
    for stage in ("vision", "projector", "prefill"):
        if stage in out:
            root = root + out[stage]
    out["root"] = root
    return out
