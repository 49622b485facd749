"""Peak memory of one untimed run of the workload, stage by stage (torch).

The run is the timed run's op sequence - a prefill forward split into vision, projector and prefill by the stage
anchors (:func:`~llm_perf_opt.measure.clock.stage_anchors`), then every decode step - with two differences that make
the figure the model's own: the prefill inputs are private copies dropped after the prefill (the harness keeps its
originals for the next run), and each step's output is dropped as soon as the next token is read from it (the
timed loop keeps it until the next step returns).  The KV cache is allocated inside the run, before the vision
stage, at its final length ``S + N - 1`` - so every stage's peak includes it.

Two meters with one interface:

* :class:`CpuMeter`: :class:`~llm_perf_opt.measure.live_bytes.LiveBytes`, the peak of live tensor storages;
* :class:`CudaMeter`: the caching allocator's statistics.  At every stage boundary the finished stage's
  ``torch.cuda.max_memory_allocated()`` (and ``max_memory_reserved()``) is read and ``reset_peak_memory_stats``
  starts the next stage from the bytes allocated then.  The allocator counts on the host as blocks are handed out,
  so no synchronisation is needed.  Peaks are reported above the bytes allocated when the run started (the
  weights of every model in the process), so they hold the run's inputs, KV cache and activations - like the CPU
  figure, but at the allocator's 512-byte block granularity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from attrs import evolve, has
from torch import Tensor, nn

from llm_perf_opt.measure.clock import stage_anchors
from llm_perf_opt.measure.live_bytes import LiveBytes
from llm_perf_opt.measure.record import MEMORY_STAGES, MemoryRecord, StageMemory
from llm_perf_opt.sources.deepseek_ocr_v1 import DeepseekOCRForCausalLM, WorkloadInputs
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting

__all__ = ["CpuMeter", "CudaMeter", "Meter", "measure_memory", "meter_for", "resident_bytes"]


class Meter(Protocol):
    """Stage-split peak bytes above what was allocated when :meth:`running` began."""

    method: str

    def running(self) -> Any: ...  # a context manager around the whole run

    def enter_stage(self, stage: str) -> None: ...

    def stage_peaks(self) -> dict[str, tuple[int, int | None]]: ...  # stage -> (peak above start, reserved)


class CpuMeter:
    """Live tensor storage (:class:`LiveBytes`); no reserved figure."""

    method = "live-bytes"

    def __init__(self) -> None:
        self.live = LiveBytes()

    @contextmanager
    def running(self) -> Iterator[CpuMeter]:
        with self.live:
            yield self

    def enter_stage(self, stage: str) -> None:
        self.live.enter_stage(stage)

    def stage_peaks(self) -> dict[str, tuple[int, int | None]]:
        return {stage: (peak, None) for stage, peak in self.live.stage_peaks.items()}


class CudaMeter:
    """``max_memory_allocated``/``max_memory_reserved`` per stage, reset at each boundary."""

    method = "cuda-allocator"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.stage: str | None = None
        self.peaks: dict[str, tuple[int, int | None]] = {}

    @contextmanager
    def running(self) -> Iterator[CudaMeter]:
        torch.cuda.synchronize(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            yield self
        finally:
            self._close()

    def enter_stage(self, stage: str) -> None:
        self._close()
        self.stage = stage
        torch.cuda.reset_peak_memory_stats(self.device)

    def _close(self) -> None:
        if self.stage is None:
            return
        allocated = torch.cuda.max_memory_allocated(self.device) - self.base
        reserved = torch.cuda.max_memory_reserved(self.device)
        old_alloc, old_res = self.peaks.get(self.stage, (0, 0))
        self.peaks[self.stage] = (max(old_alloc, allocated), max(old_res or 0, reserved))

    def stage_peaks(self) -> dict[str, tuple[int, int | None]]:
        return dict(self.peaks)


def meter_for(device: torch.device) -> Meter:
    """:class:`CudaMeter` on a CUDA device, :class:`CpuMeter` elsewhere."""
    return CudaMeter(device) if device.type == "cuda" else CpuMeter()


def resident_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameter and buffer storages, each storage once."""
    seen: dict[int, int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        st = t.untyped_storage()
        seen[st.data_ptr()] = int(st.nbytes())
    return sum(seen.values())


def measure_memory(
    model: DeepseekOCRForCausalLM,
    inputs: WorkloadInputs,
    *,
    routing: ExpertRouting | None = None,
    meter: Meter | None = None,
) -> MemoryRecord:
    """One untimed run of the workload under ``meter`` (default: :class:`CudaMeter` on CUDA, :class:`CpuMeter`)."""
    if meter is None:
        meter = meter_for(inputs.device)
    anchors = stage_anchors(model)
    current: list[str] = []

    def hook(stage: str) -> Any:
        def pre_hook(module: nn.Module, args: Any) -> None:
            if current[-1] != stage:
                current.append(stage)
                meter.enter_stage(stage)

        return pre_hook

    with torch.inference_mode(), meter.running():
        cache = inputs.new_cache()
        kwargs = {k: _copied(v) for k, v in inputs.prefill.kwargs().items()}
        handles = [module.register_forward_pre_hook(hook(stage)) for module, stage in anchors.items()]
        try:
            current.append("prefill")  # the embedding runs before the vision tower, as in StageMarks
            meter.enter_stage("prefill")
            out = model(**kwargs, past_key_values=cache, routing=routing)
        finally:
            for handle in handles:
                handle.remove()
        token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        del out, kwargs
        for step in range(1, inputs.num_decode_steps + 1):
            position_ids = inputs.decode_step(step).position_ids
            meter.enter_stage("decode")
            out = model(input_ids=token, position_ids=position_ids, past_key_values=cache, routing=routing)
            token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
            del out
        peaks = meter.stage_peaks()
        kv_bytes = cache.nbytes()
    stages = tuple(
        StageMemory(stage=stage, peak_bytes=peaks[stage][0], reserved_bytes=peaks[stage][1])
        for stage in MEMORY_STAGES
        if stage in peaks
    )
    return MemoryRecord(
        method=meter.method,  # type: ignore[arg-type]
        weights_bytes=resident_bytes(model),
        kv_cache_bytes=kv_bytes,
        stages=stages,
    )


def _copied(value: Any) -> Any:
    """A private copy of one prefill argument (tensors cloned, lists and attrs records rebuilt, the rest as is)."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if has(type(value)):
        return evolve(value, **{a.name: _copied(getattr(value, a.name)) for a in value.__attrs_attrs__})
    return value
