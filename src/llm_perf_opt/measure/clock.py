"""Clocks and stage marks for the harness (torch).

Two clocks share one small interface: :class:`HostClock` (``time.perf_counter``; right for CPU, where every op is
synchronous) and :class:`CudaEventClock` (CUDA events recorded on the current stream; one synchronisation when the
timed region is over, never in the middle of it, so timing does not change what the GPU runs).

:class:`StageMarks` times the stages of one prefill forward with forward *pre*-hooks on the stage anchors of
``docs/architecture.md`` (``model.sam_model``/``model.vision_model`` -> vision, ``model.projector`` -> projector,
``model.embed_tokens``/``model.layers.*``/``model.norm``/``lm_head`` -> prefill).  A mark is taken whenever the anchor
entered belongs to another stage than the current one; the time between two marks belongs to the earlier mark's stage,
so ops that run directly in a container take the stage of the most recently entered anchor - the tracer's rule.
The hooks only read the clock: the model's op sequence is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["PREFILL_STAGES", "Clock", "CudaEventClock", "HostClock", "StageMarks", "make_clock", "stage_anchors"]

PREFILL_STAGES = ("vision", "projector", "prefill")


class Clock(Protocol):
    """``mark()`` returns an opaque time point; ``seconds(a, b)`` is valid after ``finish()``."""

    name: str

    def mark(self) -> Any: ...

    def finish(self) -> None: ...

    def seconds(self, start: Any, end: Any) -> float: ...


class HostClock:
    """``time.perf_counter`` marks; ``finish`` does nothing (CPU ops are synchronous)."""

    name = "perf_counter"

    def mark(self) -> float:
        return time.perf_counter()

    def finish(self) -> None:
        return None

    def seconds(self, start: float, end: float) -> float:
        return end - start


class CudaEventClock:
    """CUDA events on the current stream; ``finish`` synchronises the device once, then events can be read."""

    name = "cuda-events"

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def mark(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        event.record()
        return event

    def finish(self) -> None:
        torch.cuda.synchronize(self.device)

    def seconds(self, start: torch.cuda.Event, end: torch.cuda.Event) -> float:
        return float(start.elapsed_time(end)) / 1e3  # elapsed_time is in ms


def make_clock(device: torch.device) -> Clock:
    """CUDA events on a CUDA device, ``perf_counter`` elsewhere."""
    if device.type == "cuda":
        return CudaEventClock(device)
    return HostClock()


def stage_anchors(model: nn.Module) -> dict[nn.Module, str]:
    """The anchor modules of a built-in DeepSeek-OCR model and the stage each starts."""
    core = model.get_submodule("model")
    anchors: dict[nn.Module, str] = {
        core.get_submodule("sam_model"): "vision",
        core.get_submodule("vision_model"): "vision",
        core.get_submodule("projector"): "projector",
        core.get_submodule("embed_tokens"): "prefill",
        core.get_submodule("norm"): "prefill",
        model.get_submodule("lm_head"): "prefill",
    }
    layers = core.get_submodule("layers")
    for layer in layers.children():
        anchors[layer] = "prefill"
    return anchors


class StageMarks:
    """Stage marks for one forward; :meth:`seconds` sums the intervals per stage once the clock has finished."""

    def __init__(self, clock: Clock, anchors: Mapping[nn.Module, str], *, first_stage: str = "prefill") -> None:
        self.clock = clock
        self.anchors = dict(anchors)
        self.first_stage = first_stage
        self.marks: list[tuple[str, Any]] = []

    @contextmanager
    def recording(self) -> Iterator[StageMarks]:
        """Hooks on while the block runs; the first mark at entry, the end mark at exit."""
        handles = [module.register_forward_pre_hook(self._hook(stage)) for module, stage in self.anchors.items()]
        self.marks = [(self.first_stage, self.clock.mark())]
        try:
            yield self
        finally:
            self.marks.append(("end", self.clock.mark()))
            for handle in handles:
                handle.remove()

    def _hook(self, stage: str) -> Any:
        def pre_hook(module: nn.Module, args: Any) -> None:
            if self.marks and self.marks[-1][0] != stage:
                self.marks.append((stage, self.clock.mark()))

        return pre_hook

    def seconds(self) -> dict[str, float]:
        """``stage -> seconds`` over every interval of the recorded forward (call after ``clock.finish()``)."""
        totals = dict.fromkeys(PREFILL_STAGES, 0.0)
        for (stage, start), (_, end) in zip(self.marks, self.marks[1:], strict=False):
            totals[stage] = totals.get(stage, 0.0) + self.clock.seconds(start, end)
        return totals

    def stage_sequence(self) -> list[str]:
        """Stages in the order they were entered (for tests and notes)."""
        return [stage for stage, _ in self.marks[:-1]]
