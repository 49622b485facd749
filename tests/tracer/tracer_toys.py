"""Helpers for the tracer tests (imported by name; pytest puts this directory on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.tracer.engine import TraceOptions, trace_model
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.stages import StageRules


class ToyDriver:
    """Prefill = one call of ``model`` on the tensors ``make_inputs()`` returns; no decode steps."""

    def __init__(self, model: nn.Module, make_inputs: Callable[[], tuple[Any, ...]]) -> None:
        self.model = model
        self.make_inputs = make_inputs

    @property
    def decode_steps(self) -> int:
        return 0

    def prefill(self) -> PassInputs:
        inputs = self.make_inputs()
        model = self.model
        return PassInputs(run=lambda: model(*inputs), live=[t for t in inputs if isinstance(t, torch.Tensor)])

    def step(self, i: int) -> PassInputs:  # pragma: no cover - no decode steps
        raise AssertionError("toy driver has no decode steps")


def trace_toy(
    model: nn.Module,
    make_inputs: Callable[[], tuple[Any, ...]],
    *,
    rules: StageRules | None = None,
    attention: Literal["flash", "eager"] = "flash",
    pure: frozenset[type] = frozenset(),
    replay_calls: bool | None = None,
) -> TraceResult:
    """Trace one forward call of a toy model; by default every module is a language anchor (stage prefill).  With
    ``pure`` classes (replayed), or ``replay_calls`` given (repeated calls inside a module replayed or not), the
    fast-path ops are not checked against torch's meta kernels (a check replays nothing)."""
    model = model.to("meta").eval()
    top = tuple(name for name, _ in model.named_children())
    return trace_model(
        model,
        ToyDriver(model, make_inputs),
        TraceOptions(
            rules=rules or StageRules(vision=(), projector=(), language=top),
            attention=attention,
            routing="balanced",
            model_desc="toy",
            workload_desc="toy",
            seq_len=0,
            max_new_tokens=1,
            verify_fast_meta=not pure and replay_calls is None,
            pure_modules=pure,
            replay_calls=bool(replay_calls),
        ),
    )[0]


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)
