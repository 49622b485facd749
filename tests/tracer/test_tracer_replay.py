"""Replay of repeated calls: a trace with replay equals one without on every node, and replay stays where it is safe."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest
import torch
from torch import nn
from tracer_toys import meta, trace_toy

from llm_perf_opt.core.repeats import repeatable
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer import replay
from llm_perf_opt.tracer.index import ModelIndex
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.stages import CONTAINER, StageRules, stage_kind
from llm_perf_opt.tracer.trace import trace_with_basis
from llm_perf_opt.workloads import RoutingModel, preset_workload

# -- toys ---------------------------------------------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self, width: int = 8, hidden: int = 16, *, twice: bool = False) -> None:
        super().__init__()
        self.up = nn.Linear(width, hidden, bias=False)
        self.act = nn.SiLU()
        self.down = nn.Linear(hidden, width, bias=False)
        self.twice = twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.up(x))
        if self.twice:
            h = self.act(h)
        out: torch.Tensor = self.down(h)
        return out


class Leaky(Mlp):
    """Keeps its hidden activation alive in an attribute: the call leaves more alive than its output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.kept = self.act(self.up(x))
        out: torch.Tensor = self.down(self.kept)
        return out


class Passthrough(Mlp):
    """Returns its input: the output was not made inside the call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.down(self.act(self.up(x)))
        return x


class Consumer(Mlp):
    """Frees a tensor that was alive before the call (pops it from a list its caller handed over)."""

    def forward(self, x: torch.Tensor, bag: list[torch.Tensor]) -> torch.Tensor:
        bag.pop()
        out: torch.Tensor = self.down(self.act(self.up(x)))
        return out


class Experts(nn.Module):
    """A MoE-like layer: experts on slices of a gathered tensor, then a few odd members."""

    def __init__(self, member: type[Mlp] = Mlp) -> None:
        super().__init__()
        self.experts = nn.ModuleList(Mlp() for _ in range(6))
        self.shared = Mlp(hidden=32)
        self.twice = Mlp(twice=True)
        self.odd = nn.ModuleList(member() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gathered = torch.cat([x, x], dim=0) * 2.0
        outs, start = [], 0
        for expert, size in zip(self.experts, (3, 3, 4, 3, 4, 3), strict=True):
            outs.append(expert(gathered[start : start + size]))
            start += size
        y = torch.cat(outs, dim=0)[: x.shape[0]] + self.shared(x) + self.twice(x)
        for member in self.odd:
            y = y + (member(x, [x * 1.0]) if isinstance(member, Consumer) else member(x))
        return y


def _toy_trace(model: nn.Module, pure: frozenset[type]) -> TraceResult:
    return trace_toy(model, lambda: (meta(10, 8),), pure=pure)


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the calls that were replayed."""
    paths: list[str] = []
    play = replay._play

    def spy(state: Any, tape: replay.Tape, path: str, stage: str) -> Any:
        paths.append(path)
        return play(state, tape, path, stage)

    monkeypatch.setattr(replay, "_play", spy)
    return paths


def test_repeated_experts_are_replayed_and_count_the_same(played: list[str]) -> None:
    pure = frozenset({Mlp})
    assert _toy_trace(Experts(), pure) == _toy_trace(Experts(), frozenset())
    # experts of 3 rows replay experts.0's tape, of 4 rows experts.2's; the shared expert (other weights) and the
    # one running its activation twice (another plain attribute) are recorded; the odd members see 10 rows (a new
    # key): odd.0 records, odd.1 and odd.2 replay
    assert played == ["experts.1", "experts.3", "experts.4", "experts.5", "odd.1", "odd.2"]


@pytest.mark.parametrize("member", [Leaky, Passthrough, Consumer])
def test_calls_a_tape_cannot_describe_are_run(played: list[str], member: type[Mlp]) -> None:
    pure = frozenset({Mlp, member})
    assert _toy_trace(Experts(member), pure) == _toy_trace(Experts(member), frozenset())
    assert not any(path.startswith("odd.") for path in played)
    assert "experts.1" in played


def test_only_pure_classes_with_pure_insides_and_no_hooks_are_replayable() -> None:
    model = Experts().eval()
    hooked = Mlp()
    hooked.register_forward_hook(lambda *args: None)
    model.odd[0] = hooked
    model.odd[1].up = Passthrough()  # an impure class inside a pure one
    index = ModelIndex(model)
    rules = StageRules(vision=(), projector=(), language=("experts", "shared", "double", "odd"))
    kinds = {path: stage_kind(path, rules) for path, _ in index.entries}
    paths = replay.replayable_paths(index, kinds, CONTAINER, frozenset({Mlp, Experts}))
    # Experts holds lists; odd.0 has a hook; odd.1 holds an impure module; leaves have no children
    experts = [f"experts.{i}" for i in range(6)]
    assert sorted(paths) == [*experts, "odd.2", "shared", "twice"]


# -- the built-in model -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1() -> tuple[Any, dict[str, nn.Module]]:
    source = resolve_model_source("deepseek-ocr-v1-base")
    return source, {kind: source.build(attn_implementation=kind) for kind in ("sdpa", "eager")}


@pytest.mark.parametrize(
    ("batch", "attention", "routing"),
    [(1, "flash", "balanced"), pytest.param(16, "eager", "skewed:1.2", marks=pytest.mark.slow)],
)
def test_v1_with_replay_equals_without(
    v1: tuple[Any, dict[str, nn.Module]], played: list[str], batch: int, attention: str, routing: str
) -> None:
    source, models = v1
    model = models["sdpa" if attention == "flash" else "eager"]
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), batch_size=batch, max_new_tokens=40)
    kwargs: dict[str, Any] = {"model": model, "attention": attention, "routing": RoutingModel.parse(routing)}
    with_replay = trace_with_basis(source, work, far_new_tokens=300, **kwargs)
    count = len(played)
    without = trace_with_basis(source, work, far_new_tokens=300, replay=False, **kwargs)
    assert len(played) == count > 700  # the routed experts at least
    assert with_replay[0] == without[0]
    assert with_replay[2] == without[2]  # the decode basis too


def test_v1_moe_layers_whose_routed_counts_agree_replay_one_tape(
    v1: tuple[Any, dict[str, nn.Module]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MoE ignores its layer index and keys its slice sizes: at 32 rows (T*k a multiple of E in prefill and decode
    under balanced routing) every MoE layer of the prefill but the first is replayed, and the counts stay those of a
    trace without replay; at 1 row the layers' counts differ and each runs."""
    source, models = v1
    kwargs: dict[str, Any] = {"model": models["sdpa"], "attention": "flash", "routing": RoutingModel.balanced()}
    prefill_plays: list[str] = []
    play = replay._play

    def spy(state: Any, tape: replay.Tape, path: str, stage: str) -> Any:
        if stage == "prefill" and re.fullmatch(r"model\.layers\.\d+\.mlp", path):
            prefill_plays.append(path)
        return play(state, tape, path, stage)

    monkeypatch.setattr(replay, "_play", spy)
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), batch_size=32, max_new_tokens=8)
    with_replay = trace_with_basis(source, work, **kwargs)
    assert prefill_plays == [f"model.layers.{i}.mlp" for i in range(2, 12)]  # (layer 0: a dense MLP)
    assert with_replay[0] == trace_with_basis(source, work, replay=False, **kwargs)[0]
    prefill_plays.clear()
    trace_with_basis(source, attrs.evolve(work, batch_size=1), **kwargs)
    assert prefill_plays == []


# -- repeated calls inside a module (core.repeats.repeatable) ------------------------------------------------------


class FusedExperts(nn.Module):
    """DeepSeek-OCR-2's fused experts in small: 3-D weights, one ``up``/``down`` pair per expert on its slice, in
    ascending slice size (the last call's peak holds every earlier output), an activation module inside."""

    def __init__(self, experts: int = 6, width: int = 8, hidden: int = 16, *, leaky: bool = False) -> None:
        super().__init__()
        self.up = nn.Parameter(torch.empty(experts, hidden, width))
        self.down = nn.Parameter(torch.empty(experts, width, hidden))
        self.act = nn.SiLU()
        self.leaky = leaky
        self.kept: list[torch.Tensor] = []

    def _expert(self, tokens: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        hidden = self.act(torch.nn.functional.linear(tokens, up))
        if self.leaky:  # keeps its hidden activation alive: the call leaves more alive than its output
            self.kept.append(hidden)
        return torch.nn.functional.linear(hidden, down)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gathered = torch.cat([x, x], dim=0) * 2.0
        scratch = gathered.new_empty(400, 8) * 1.0  # a peak before the experts, above any expert's own
        del scratch
        sizes, starts = (3, 3, 3, 3, 4, 4), (0, 3, 6, 9, 12, 16)
        outs = [
            repeatable(self._expert, gathered[start : start + size], self.up[e], self.down[e], key="expert")
            for e, (start, size) in enumerate(zip(starts, sizes, strict=True))
        ]
        return torch.cat(outs, dim=0)[: x.shape[0]] * 3.0


class TwoLayers(nn.Module):
    def __init__(self, *, leaky: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusedExperts(leaky=leaky) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.mark.parametrize("leaky", [False, True])
def test_repeated_calls_inside_a_module_are_replayed_and_count_the_same(played: list[str], leaky: bool) -> None:
    """Six experts of two slice sizes: two run and four replay per layer (each layer its own); the tree, peaks
    included, is the one without replay; a call that leaves its hidden activation alive runs every time."""
    with_replay = trace_toy(TwoLayers(leaky=leaky), lambda: (meta(10, 8),), replay_calls=True)
    assert played == ([] if leaky else [f"layers.{i}" for i in (0, 0, 0, 0, 1, 1, 1, 1)])
    played.clear()
    without = trace_toy(TwoLayers(leaky=leaky), lambda: (meta(10, 8),), replay_calls=False)
    assert played == []
    assert with_replay == without
    assert any(node.peak_activation_bytes for node in with_replay.nodes.values())


class TwoFunctions(nn.Module):
    """Two functions of one key and one argument layout: neither is the other's replay."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        doubled = repeatable(torch.mul, x, 2.0, key="step")
        shifted = repeatable(torch.add, x, 2.0, key="step")
        return doubled + shifted


def test_a_repeated_call_is_keyed_by_its_function_too(played: list[str]) -> None:
    with_replay = trace_toy(TwoFunctions(), lambda: (meta(10, 8),), replay_calls=True)
    assert played == []
    assert with_replay == trace_toy(TwoFunctions(), lambda: (meta(10, 8),), replay_calls=False)
    assert {"aten.mul.Tensor", "aten.add.Tensor"} <= set(with_replay.op_ledger)
