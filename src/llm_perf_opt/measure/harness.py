"""Run the built-in DeepSeek-OCR v1 model for real and time its stages (torch).

One *run* of a workload = one prefill forward (images in, logits out) and ``max_new_tokens - 1`` decode steps, greedy,
HF style: each step feeds the argmax token of the previous logits, one cached model call per token, and waits for the
device at the end of the step (HF's stopping check does the same).  Weights are random (no checkpoint); the MoE takes
its slice sizes from its own gate, as upstream does (one host read per MoE layer), or with ``routing="balanced"``
from the balanced routing model the predictions assume (the host read stays).

Timing: warm-up runs first (discarded), then ``repeats`` timed runs.  The prefill is split into vision, projector and
prefill by :class:`~llm_perf_opt.measure.clock.StageMarks` (forward pre-hooks on the stage anchors; the op sequence is
unchanged); each decode step is timed around the model call only (the argmax and the input tensors are outside).
On CUDA the clock is CUDA events, read after one synchronisation per run; on CPU it is ``time.perf_counter``.

Several decoder attentions can be measured in one process (:func:`run_measurements`): one model per attention, built
from the same seed (same weights, same routing), warmed up in turn, then timed round-robin - repeat 1 of each, repeat
2 of each, ... - so that a slow spell of the host (batch-1 GPU inference is host-bound) hits every variant alike
instead of one process.

Kernel launches: one extra, untimed prefill and decode step 1 under ``torch.profiler``.  On CUDA the profiler's
device kernels are counted (memcpy/memset excluded) and their durations summed (*device busy* time: what the GPU
spent executing, without the gaps in which it waited for the host).  On CPU there are no kernels; the leaf aten ops
that do work (views, aliases and allocations excluded) are counted instead and the measurement says so.

Memory: one more untimed run per model, stage by stage (:mod:`llm_perf_opt.measure.peak_memory`): live tensor
storage on CPU, the caching allocator's peak statistics on CUDA.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import torch
from attrs import field, frozen
from torch import Tensor

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.clock import Clock, StageMarks, make_clock, stage_anchors
from llm_perf_opt.measure.environment import describe_device, software_record, torch_dtype
from llm_perf_opt.measure.peak_memory import measure_memory
from llm_perf_opt.measure.predict import workload_of
from llm_perf_opt.measure.record import KernelCount, Measurement, MemoryRecord, StageTimings, WorkloadRecord
from llm_perf_opt.sources.deepseek_ocr_v1 import DeepseekOCRForCausalLM, WorkloadInputs, build_inputs, build_model
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.registry import ModelSource, resolve_model_source
from llm_perf_opt.sources.registry import build_model as builtin_builder
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = [
    "CPU_FREE_OPS",
    "HarnessOptions",
    "builtin_config",
    "count_cpu_work_ops",
    "count_cuda_kernels",
    "count_decode_launches",
    "device_busy_s",
    "profile_launches",
    "record_memory_for",
    "resolve_device",
    "run_measurement",
    "run_measurements",
    "time_run",
]


CPU_FREE_OPS = frozenset(
    {
        "aten::empty",
        "aten::empty_strided",
        "aten::empty_like",
        "aten::as_strided",
        "aten::view",
        "aten::_unsafe_view",
        "aten::_reshape_alias",
        "aten::t",
        "aten::transpose",
        "aten::permute",
        "aten::expand",
        "aten::unsqueeze",
        "aten::squeeze",
        "aten::slice",
        "aten::select",
        "aten::narrow",
        "aten::split",
        "aten::unbind",
        "aten::detach",
        "aten::alias",
        "aten::lift_fresh",
        "aten::resolve_conj",
        "aten::resolve_neg",
        "aten::result_type",
    }
)
"""Leaf CPU ops that move no data (views, aliases, allocations): not counted as launches on CPU."""


@frozen(kw_only=True)
class HarnessOptions:
    """How to run and time one measurement."""

    runtime_device: Literal["cpu", "cuda"] = field(default="cpu", metadata={"help": "torch device type"})
    dtype: str = field(default="fp32", metadata={"help": "fp32, bf16 or fp16"})
    attention: Literal["eager", "sdpa"] = field(default="eager", metadata={"help": "decoder attention"})
    routing: Literal["gate", "balanced"] = field(
        default="gate",
        metadata={
            "help": "MoE slice sizes: the random gate's decisions, or the balanced routing model predictions use"
        },
    )
    warmup_runs: int = field(default=1, metadata={"help": "untimed runs before the timed ones"})
    warmup_decode_steps: int | None = field(default=None, metadata={"help": "decode steps per warm-up (None: all)"})
    repeats: int = field(default=3, metadata={"help": "timed runs"})
    statistic: Literal["median", "min"] = field(default="median", metadata={"help": "summary over repeats"})
    threads: int | None = field(default=None, metadata={"help": "CPU intra-op threads (None: leave torch's)"})
    profile_kernels: bool = field(default=True, metadata={"help": "count launches of one decode step"})
    record_memory: bool = field(default=True, metadata={"help": "one extra untimed run that records peak memory"})
    benchmark: bool = field(default=True, metadata={"help": "run the matmul/copy micro-benchmarks"})
    device_id: str | None = field(default=None, metadata={"help": "hardware catalog id of the device"})
    workload_id: str | None = field(default=None, metadata={"help": "preset id the workload came from"})
    notes: str = field(default="", metadata={"help": "free text stored in the measurement"})


def builtin_config(model: str) -> DeepseekOCRConfig:
    """The config of a model source the harness can run: one built by the built-in v1 module tree.

    Unknown names are an :class:`UnknownIdError` (from the registry); a source with another builder (an upstream
    snapshot) is a :class:`UserError`, because the harness drives the built-in forward API.
    """
    source = resolve_model_source(model)
    if source.kind != ModelSource.kind or source.builder is not builtin_builder:  # (OCR-2 keeps the default builder)
        raise UserError(
            f"measure runs the built-in DeepSeek-OCR v1 module tree only, and model source {model!r} is built "
            "another way; measure a built-in variant (deepseek-ocr-v1-base or deepseek-ocr-v1-tiny)"
        )
    return source.config


def resolve_device(runtime_device: str) -> torch.device:
    """``cpu`` or ``cuda`` (the current CUDA device); CUDA without a GPU is a one-line :class:`UserError`."""
    if runtime_device == "cpu":
        return torch.device("cpu")
    if runtime_device == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--runtime-device cuda needs a CUDA GPU and a CUDA build of torch, and none is available here "
                f"(torch {torch.__version__}); use --runtime-device cpu with the tiny model"
            )
        return torch.device("cuda", torch.cuda.current_device())
    raise UserError(f"unknown runtime device {runtime_device!r}; expected cpu or cuda")


def run_measurement(
    config: DeepseekOCRConfig, workload: Any, options: HarnessOptions, *, model_name: str | None = None
) -> Measurement:
    """Build the model with random weights on the device, run warm-ups and timed runs, return the measurement."""
    return run_measurements(config, workload, options, attentions=(options.attention,), model_name=model_name)[0]


def run_measurements(
    config: DeepseekOCRConfig,
    workload: Any,
    options: HarnessOptions,
    *,
    attentions: Sequence[Literal["eager", "sdpa"]],
    model_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """One measurement per decoder attention in ``attentions`` (in that order), timed round-robin in this process;
    ``progress`` hears each step as it starts (building, warm-ups, timed runs, profiler, memory, micro-benchmarks)."""
    if getattr(workload, "num_pages", 1) != 1:
        raise UserError(f"measure runs one page per request; the workload has num_pages={workload.num_pages}")
    if not attentions or len(set(attentions)) != len(attentions):
        raise UserError(f"measure needs distinct decoder attentions, got {', '.join(attentions) or 'none'}")
    device = resolve_device(options.runtime_device)
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and options.threads is not None:
        torch.set_num_threads(options.threads)
    try:
        say = progress or _silent
        return _measure(config, workload, options, attentions, device=device, model_name=model_name, say=say)
    finally:
        torch.set_num_threads(threads_before)


def _measure(
    config: DeepseekOCRConfig,
    workload: Any,
    options: HarnessOptions,
    attentions: Sequence[Literal["eager", "sdpa"]],
    *,
    device: torch.device,
    model_name: str | None,
    say: Callable[[str], None],
) -> list[Measurement]:
    dtype = torch_dtype(options.dtype)
    name = model_name or config.variant
    models = {}
    for a in attentions:
        say(f"building {name} with random weights ({a} attention, {options.dtype} on {device.type})")
        models[a] = build_model(config, device=device, dtype=dtype, attn_implementation=a)
    inputs = build_inputs(config, workload, device=device, dtype=dtype)
    clock = make_clock(device)
    routing = RoutingModel.balanced() if options.routing == "balanced" else None
    runs: dict[str, list[StageTimings]] = {a: [] for a in attentions}
    launches: dict[str, tuple[KernelCount | None, KernelCount | None]] = {}
    with torch.inference_mode():
        for attention, model in models.items():
            for i in range(options.warmup_runs):
                say(f"warm-up {i + 1}/{options.warmup_runs} ({attention})")
                time_run(model, inputs, clock, decode_steps=options.warmup_decode_steps, routing=routing)
        for r in range(options.repeats):
            for attention, model in models.items():
                say(f"timed run {r + 1}/{options.repeats} ({attention}, {inputs.num_decode_steps} decode steps)")
                runs[attention].append(time_run(model, inputs, clock, routing=routing))
        for attention, model in models.items():
            if options.profile_kernels:
                say(f"counting kernel launches under the profiler ({attention})")
            launches[attention] = (
                profile_launches(model, inputs, routing=routing) if options.profile_kernels else (None, None)
            )
    memory: dict[str, MemoryRecord | None] = {}
    for a, model in models.items():
        if options.record_memory:
            say(f"recording peak memory per stage ({a})")
        memory[a] = measure_memory(model, inputs, routing=routing) if options.record_memory else None
    if options.benchmark:
        say("matmul and copy micro-benchmarks of the device")
    device_record = describe_device(device, dtype, device_id=options.device_id, benchmark=options.benchmark)
    software = software_record()
    done = datetime.now(UTC)
    return [
        Measurement(
            run_id=f"meas-{done:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
            created_utc=done.strftime("%Y-%m-%dT%H:%M:%SZ"),
            model=model_name or config.variant,
            workload=WorkloadRecord.from_workload(workload, workload_id=options.workload_id),
            device=device_record,
            software=software,
            dtype=options.dtype,
            attention=attention,
            routing=options.routing,
            warmup_runs=options.warmup_runs,
            clock=clock.name,
            statistic=options.statistic,
            runs=tuple(runs[attention]),
            kernels=launches[attention][1] if inputs.num_decode_steps else None,
            prefill_kernels=launches[attention][0],
            memory=memory[attention],
            notes=_with_peers(options.notes, attention, attentions),
        )
        for attention in attentions
    ]


def _silent(message: str) -> None:
    """The progress sink of a caller that wants none."""


def _with_peers(notes: str, attention: str, attentions: Sequence[str]) -> str:
    """The notes, plus which variants shared the process (round-robin), when there were several."""
    if len(attentions) < 2:
        return notes
    peers = "; ".join(
        filter(None, [notes, f"timed round-robin with {', '.join(a for a in attentions if a != attention)}"])
    )
    return peers


def _greedy(logits: Tensor) -> Tensor:
    """Next token per row ``[B, 1]`` from the last position's logits (stays on the device)."""
    return logits[:, -1].argmax(dim=-1, keepdim=True)


def time_run(
    model: DeepseekOCRForCausalLM,
    inputs: WorkloadInputs,
    clock: Clock,
    *,
    decode_steps: int | None = None,
    routing: ExpertRouting | None = None,
) -> StageTimings:
    """One timed run: the prefill split by stage, then each decode step (``decode_steps``: fewer, for warm-ups);
    ``routing`` sets the MoE slice sizes (None: the gate's)."""
    steps = inputs.num_decode_steps if decode_steps is None else min(decode_steps, inputs.num_decode_steps)
    cuda = inputs.device.type == "cuda"
    cache = inputs.new_cache()
    marks = StageMarks(clock, stage_anchors(model))
    with marks.recording():
        out = model(**inputs.prefill.kwargs(), past_key_values=cache, routing=routing)
    token = _greedy(out.logits)
    step_marks: list[tuple[Any, Any]] = []
    for step in range(1, steps + 1):
        position_ids = inputs.decode_step(step).position_ids
        start = clock.mark()
        out = model(input_ids=token, position_ids=position_ids, past_key_values=cache, routing=routing)
        end = clock.mark()
        token = _greedy(out.logits)
        if cuda:
            torch.cuda.synchronize(inputs.device)  # HF-style: the host checks for EOS after every step
        step_marks.append((start, end))
    clock.finish()
    stage_s = marks.seconds()
    return StageTimings(
        vision_s=round(stage_s["vision"], 9),
        projector_s=round(stage_s["projector"], 9),
        prefill_s=round(stage_s["prefill"], 9),
        decode_steps_s=tuple(round(clock.seconds(a, b), 9) for a, b in step_marks),
    )


def count_decode_launches(
    model: DeepseekOCRForCausalLM, inputs: WorkloadInputs, *, routing: ExpertRouting | None = None
) -> KernelCount | None:
    """Launches of decode step 1 under ``torch.profiler`` (None when the profiler cannot run here)."""
    return profile_launches(model, inputs, routing=routing)[1]


def profile_launches(
    model: DeepseekOCRForCausalLM, inputs: WorkloadInputs, *, routing: ExpertRouting | None = None
) -> tuple[KernelCount | None, KernelCount | None]:
    """Launches (and, on CUDA, device busy seconds) of one prefill forward and of decode step 1 under
    ``torch.profiler``; None for a part the profiler cannot see here (or a workload without decode steps)."""
    cuda = inputs.device.type == "cuda"
    cache = inputs.new_cache()
    prefill_events = _profiled(
        lambda: model(**inputs.prefill.kwargs(), past_key_values=cache, routing=routing), cuda=cuda
    )
    prefill = _launches(prefill_events, cuda=cuda, step=0) if prefill_events is not None else None
    if not inputs.num_decode_steps:
        return prefill, None
    with torch.inference_mode():
        out = model(**inputs.prefill.kwargs(), past_key_values=(cache := inputs.new_cache()), routing=routing)
    token = _greedy(out.logits)
    position_ids = inputs.decode_step(1).position_ids
    decode_events = _profiled(
        lambda: model(input_ids=token, position_ids=position_ids, past_key_values=cache, routing=routing), cuda=cuda
    )
    decode = _launches(decode_events, cuda=cuda, step=1) if decode_events is not None else None
    return prefill, decode


def _profiled(call: Any, *, cuda: bool) -> list[Any] | None:
    """The profiler's events of ``call()`` (device synchronised before and after), or None if it cannot run."""
    # lazy: the profiler is loaded only when kernels are profiled
    from torch.profiler import ProfilerActivity, profile

    # kineto logs every profiler start and stop ("USDT: ... profiler_start") on stderr below level 6; a user who
    # wants those lines sets KINETO_LOG_LEVEL themselves
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    if cuda:
        torch.cuda.synchronize()
    try:
        with torch.inference_mode(), profile(activities=activities) as prof:
            call()
            if cuda:
                torch.cuda.synchronize()
        return list(prof.events())
    except (RuntimeError, AssertionError):
        return None


def _launches(events: Sequence[Any], *, cuda: bool, step: int) -> KernelCount | None:
    if cuda:
        count = count_cuda_kernels(events)
        if count is None:
            return None
        return KernelCount(
            per_decode_step=count,
            method="cuda-kernels (torch.profiler)",
            step=step,
            device_busy_s=device_busy_s(events),
        )
    return KernelCount(
        per_decode_step=count_cpu_work_ops(events),
        method="cpu-leaf-aten-ops-excluding-views (a proxy: the CPU launches no kernels)",
        step=step,
    )


def device_busy_s(events: Sequence[Any]) -> float | None:
    """Sum of the device kernels' durations in seconds (memcpy/memset excluded); None without device events.

    Kernels on one stream do not overlap, so the sum is the time the GPU spent executing: the device side of the
    roofline, without the gaps in which it waited for the host.
    """
    durations = [_duration_us(k) for k in _device_kernels(events)]
    return round(sum(durations) * 1e-6, 9) if durations else None


def _duration_us(kernel: Any) -> float:
    """A device event's duration (``time_range``), or an older layout's ``Kernel.duration``, in microseconds."""
    span = getattr(kernel, "time_range", None)
    if span is not None:
        return float(span.end - span.start)
    return float(getattr(kernel, "duration", 0.0) or 0.0)


def _device_kernels(events: Sequence[Any]) -> list[Any]:
    device_events = [e for e in events if getattr(e.device_type, "name", "") == "CUDA"]
    kernels = [e for e in device_events if not str(e.name).startswith(("Memcpy", "Memset"))]
    if not device_events:  # older layouts attach kernels to their CPU ops instead
        kernels = [k for e in events for k in getattr(e, "kernels", [])]
    return kernels


def count_cuda_kernels(events: Sequence[Any]) -> int | None:
    """Device-side CUDA events that are kernels (memcpy/memset excluded); None when the profiler saw no device
    activity at all (no CUPTI), rather than a misleading 0."""
    kernels = _device_kernels(events)
    return len(kernels) if kernels else None


def count_cpu_work_ops(events: Sequence[Any]) -> int:
    """Leaf ``aten::`` ops (no aten child) that are not views, aliases or allocations."""
    count = 0
    for event in events:
        name = str(event.name)
        if not name.startswith("aten::") or name in CPU_FREE_OPS:
            continue
        if any(str(child.name).startswith("aten::") for child in event.cpu_children):
            continue
        count += 1
    return count


def record_memory_for(measurement: Measurement, *, threads: int | None = 1) -> MemoryRecord:
    """Peak memory per stage of the model and workload ``measurement`` ran (same dtype, decoder attention and
    routing), from one untimed run on this machine's device of the measurement's kind; its timings are not touched.

    A CUDA measurement needs a CUDA GPU here (a one-line :class:`UserError` otherwise).
    """
    config = builtin_config(measurement.model)
    device = resolve_device(measurement.device.runtime)
    dtype = torch_dtype(measurement.dtype)
    routing = RoutingModel.balanced() if measurement.routing == "balanced" else None
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        model = build_model(config, device=device, dtype=dtype, attn_implementation=measurement.attention)
        inputs = build_inputs(config, workload_of(measurement), device=device, dtype=dtype)
        return measure_memory(model, inputs, routing=routing)
    finally:
        torch.set_num_threads(threads_before)
