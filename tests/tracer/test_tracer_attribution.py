"""Attribution on toy modules: innermost module call, nested containers, repeated calls, stages, peaks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tracer_toys import meta, trace_toy

from llm_perf_opt.tracer.stages import StageRules

F32 = 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.ModuleList(nn.Linear(8, 8, bias=False) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin in self.inner:
            x = lin(x)
        return x + 1.0


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(3))
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 4, bias=False), "b": nn.Linear(8, 2, bias=False)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return torch.cat([self.heads["a"](x), self.heads["b"](x)], dim=-1)


def test_nested_module_list_and_dict() -> None:
    r = trace_toy(Nested(), lambda: (meta(5, 8),))
    blocks = r.node("prefill/blocks.{0..2}")
    assert (blocks.repetition, blocks.repetition_count, blocks.calls) == ("for", 3, 3)
    inner = r.node("prefill/blocks.{0..2}.inner.{0..1}")
    assert (inner.repetition, inner.repetition_count, inner.calls) == ("for", 2, 6)
    assert inner.cost.matmul_flops == 6 * (2 * 5 * 8 * 8)  # 3 blocks x 2 linears, one [5,8]x[8,8] product each
    assert blocks.cost.vector_flops == 3 * 5 * 8  # the "+ 1.0" of each block, run directly in the block
    assert blocks.by_category["elementwise"].vector_flops == 3 * 5 * 8
    assert blocks.by_category["linear"].matmul_flops == inner.cost.matmul_flops
    a, b = r.node("prefill/heads.a"), r.node("prefill/heads.b")
    assert (a.repetition, b.repetition) == ("none", "none")  # ModuleDict children are never grouped
    assert a.cost.matmul_flops == 2 * 5 * 8 * 4
    assert b.cost.matmul_flops == 2 * 5 * 8 * 2
    assert r.node("prefill/blocks").children == ("prefill/blocks.{0..2}",)
    assert r.node("prefill").cost.matmul_flops == inner.cost.matmul_flops + a.cost.matmul_flops + b.cost.matmul_flops
    assert blocks.weight_bytes == 3 * 2 * 8 * 8 * F32
    assert r.node("prefill/blocks.{0..2}.inner.{0..1}").constructor_params["in_features"] == 8


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.enc(x).sum() + self.enc(y).sum()


def test_module_called_twice_is_two_calls() -> None:
    r = trace_toy(Twice(), lambda: (meta(4, 8), meta(10, 8)))
    enc = r.node("prefill/enc")
    assert enc.calls == 2
    assert enc.cost.matmul_flops == 2 * 4 * 8 * 8 + 2 * 10 * 8 * 8
    assert enc.cost.weight_bytes_read == 2 * 8 * 8 * F32  # the weight is read by each call
    assert enc.weight_bytes == 8 * 8 * F32  # but held once


class Branchy(nn.Module):
    """Identical parameters; block 1 takes another path because of a shared config, not of its structure."""

    def __init__(self, gelu_at: int, layer_idx: int) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8, bias=False)
        self.layer_idx = layer_idx  # an index attribute: not part of the structure key
        self._gelu_at = gelu_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lin(x)
        return F.gelu(x) if self.layer_idx == self._gelu_at else F.relu(x)


class BranchModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Branchy(1, i) for i in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def test_branching_block_is_not_merged() -> None:
    r = trace_toy(BranchModel(), lambda: (meta(2, 8),))
    children = r.node("prefill/layers").children
    assert children == ("prefill/layers.{0,2,3}", "prefill/layers.1")
    assert r.node("prefill/layers.{0,2,3}").repetition_count == 3
    assert r.node("prefill/layers.1").repetition == "none"
    assert r.node("prefill/layers.1").cost.vector_flops == 5 * 2 * 8  # gelu
    assert r.node("prefill/layers.{0,2,3}").cost.vector_flops == 3 * 2 * 8  # relu x 3


class Experts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.experts = nn.ModuleList(nn.Linear(8, 8, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [expert(x[i : i + 1]) for i, expert in enumerate(self.experts)]
        return torch.cat(outs, dim=0)


def test_independent_members_are_parfor() -> None:
    r = trace_toy(Experts(), lambda: (meta(4, 8),))
    node = r.node("prefill/experts.{0..3}")
    assert (node.repetition, node.repetition_count, node.calls) == ("parfor", 4, 4)


class Pipeline(nn.Module):
    """enc -> (ops in the root) -> proj -> (ops in the root) -> dec."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 8, bias=False)
        self.proj = nn.Linear(8, 8, bias=False)
        self.dec = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x) * 2.0  # root op after the vision anchor -> vision
        p = self.proj(e) - 1.0  # after the projector anchor -> projector
        return self.dec(p) + 3.0  # after a language anchor -> prefill


def test_stages_follow_anchors() -> None:
    rules = StageRules(vision=("enc",), projector=("proj",), language=("dec",))
    r = trace_toy(Pipeline(), lambda: (meta(4, 8),), rules=rules)
    assert r.root.children == ("vision", "projector", "prefill")
    for stage, op in (("vision", "aten.mul.Tensor"), ("projector", "aten.sub.Tensor"), ("prefill", "aten.add.Tensor")):
        node = r.node(stage)
        assert node.cost.vector_flops == 4 * 8, (stage, op)
        assert node.calls == 1  # the root call touched every stage
    assert r.node("vision/enc").cost.matmul_flops == 2 * 4 * 8 * 8
    assert "vision/proj" not in r.nodes and "projector/enc" not in r.nodes
    assert r.root.cost.matmul_flops == 3 * 2 * 4 * 8 * 8
    assert r.root.weight_bytes == 3 * 8 * 8 * F32
    assert r.node("vision").weight_bytes == 8 * 8 * F32  # only the modules that ran in the stage


class Temp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = x.repeat(100, 1)  # 100x the input, freed before returning
        return big.sum(0)


class Peaks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Temp()
        self.b = Temp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_peak_is_a_max_not_a_sum() -> None:
    r = trace_toy(Peaks(), lambda: (meta(10, 16),))
    x_bytes = 10 * 16 * F32
    big = 100 * x_bytes
    a, b = r.node("prefill/a"), r.node("prefill/b")
    assert a.peak_activation_bytes >= x_bytes + big
    assert b.peak_activation_bytes < x_bytes + 2 * big  # a's temporary is gone when b runs
    root = r.node("prefill")
    assert root.peak_activation_bytes == max(a.peak_activation_bytes, b.peak_activation_bytes)
    assert root.peak_activation_bytes < 2 * big
