"""Affine decode fit: the integration arithmetic, the refusal of non-affine counters, and fit == every step."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
import torch
from torch import nn

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.decode_fit import AffineFitError, fit_steps, integrate_affine, ordered_keys, pick_steps
from llm_perf_opt.tracer.engine import TraceOptions, trace_model
from llm_perf_opt.tracer.nodedata import NodeData
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.stages import StageRules
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import preset_workload


def test_pick_steps() -> None:
    assert pick_steps(0) == ()
    assert pick_steps(3) == (1, 2, 3)
    assert pick_steps(511) == (1, 256, 511)


def test_integrate_affine() -> None:
    # v(i) = 5 + 3i over i = 1..10: 10*5 + 3*55 = 215
    assert integrate_affine(v1=8, v3=35, i1=1, i3=10, n=10) == 10 * 5 + 3 * 55
    assert integrate_affine(v1=7, v3=7, i1=1, i3=511, n=511) == 7 * 511


def _data(rows: dict[str, int], peak: int, kv: int) -> NodeData:
    data = NodeData()
    for op, flops in rows.items():
        data.table[("decode", ("layer",), "linear", op)] = Counters(
            kernels=1, matmul_flops=flops, matmul_flops_executed=flops
        )
    data.calls[("decode", ("layer",))] = 1
    data.peaks[("decode", ("layer",))] = peak
    data.kv_held[("decode", ("layer",))] = kv
    return data


def test_fit_steps_integrates_and_takes_end_values() -> None:
    # flops 100 + 10*i, peak 50 + i, KV held 1000 + 4*i; steps 1, 5, 9 of 9
    steps = {i: _data({"mm": 100 + 10 * i}, 50 + i, 1000 + 4 * i) for i in (1, 5, 9)}
    out = fit_steps(steps, 9)
    key = ("decode", ("layer",), "linear", "mm")
    assert out.table[key].matmul_flops == sum(100 + 10 * i for i in range(1, 10))
    assert out.table[key].kernels == 9  # one op per step
    assert out.calls[("decode", ("layer",))] == 9
    assert out.peaks[("decode", ("layer",))] == 50 + 9
    assert out.kv_held[("decode", ("layer",))] == 1000 + 4 * 9


def test_fit_steps_refuses_non_affine() -> None:
    steps = {i: _data({"mm": i * i}, 1, 1) for i in (1, 5, 9)}
    with pytest.raises(AffineFitError, match=r"'mm'\) matmul_flops: 1, 25, 81 at steps 1, 5, 9"):
        fit_steps(steps, 9)
    steps = {i: _data({"mm": 1}, 1, 1) for i in (1, 5, 9)}
    steps[9].table[("decode", ("other",), "linear", "mm")] = Counters(
        kernels=1, matmul_flops=1, matmul_flops_executed=1
    )  # late
    with pytest.raises(AffineFitError):
        fit_steps(steps, 9)


def test_affine_fit_equals_every_step_on_tiny_model() -> None:
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=8)  # 7 decode steps
    fit = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), work)
    every = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), work, decode="every-step")
    assert fit.decode_method == "affine-fit"
    assert every.decode_method == "every-step"
    assert fit.nodes.keys() == every.nodes.keys()
    for node_id, node in fit.nodes.items():
        other = every.nodes[node_id]
        assert node.cost == other.cost, node_id
        assert node.by_category == other.by_category, node_id
        assert node.calls == other.calls, node_id
        assert node.peak_activation_bytes == other.peak_activation_bytes, node_id
        assert node.kv_cache_bytes == other.kv_cache_bytes, node_id
    assert {op: (e.count, e.cost) for op, e in fit.op_ledger.items()} == {
        op: (e.count, e.cost) for op, e in every.op_ledger.items()
    }
    assert fit.node("decode").repetition_count == 7
    assert fit.node("decode").calls == 7


class _StepDriver:
    """Prefill on 4 rows, decode step i on ``rows(i)`` rows of a toy linear model."""

    def __init__(self, model: nn.Module, steps: int, rows: Callable[[int], int]) -> None:
        self.model, self.steps, self.rows = model, steps, rows

    @property
    def decode_steps(self) -> int:
        return self.steps

    def _pass(self, n: int) -> PassInputs:
        x = torch.empty(n, 8, device="meta")
        model = self.model
        return PassInputs(run=lambda: model(x), live=[x])

    def prefill(self) -> PassInputs:
        return self._pass(4)

    def step(self, i: int) -> PassInputs:
        return self._pass(self.rows(i))


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _trace_steps(rows: Callable[[int], int], steps: int) -> TraceResult:
    model = _Toy().to("meta")
    return trace_model(
        model,
        _StepDriver(model, steps, rows),
        TraceOptions(
            rules=StageRules(vision=(), projector=(), language=("lin",)),
            attention="flash",
            routing="balanced",
            model_desc="toy",
            workload_desc="toy",
            seq_len=4,
            max_new_tokens=steps + 1,
        ),
    )[0]


def test_affine_toy_integrates_exactly() -> None:
    result = _trace_steps(lambda i: 3 + i, 50)
    assert result.decode_method == "affine-fit"
    assert result.node("decode/lin").cost.matmul_flops == sum(2 * (3 + i) * 8 * 8 for i in range(1, 51))
    assert result.node("decode/lin").calls == 50


def test_non_affine_falls_back_to_every_step() -> None:
    result = _trace_steps(lambda i: i * i, 9)
    assert result.decode_method == "every-step"
    assert "affine check failed" in result.decode_note
    assert result.node("decode/lin").cost.matmul_flops == sum(2 * i * i * 8 * 8 for i in range(1, 10))


def test_peaks_need_only_be_convex() -> None:
    # a peak that is flat, then grows (another tensor overtakes): not affine, but convex -> the larger end value
    steps = {i: _data({"mm": 100 + 10 * i}, max(500, 400 + 2 * i), 1000 + 4 * i) for i in (1, 64, 127)}
    out = fit_steps(steps, 127)
    assert out.peaks[("decode", ("layer",))] == 654
    concave = {i: _data({"mm": 1}, min(500, 400 + 2 * i), 1) for i in (1, 64, 127)}
    with pytest.raises(AffineFitError, match="not convex"):
        fit_steps(concave, 127)


@pytest.mark.slow
def test_eager_decode_peak_with_a_kink_is_fitted_and_equals_every_step() -> None:
    # eager decoder, fused SDPA elsewhere (how measurements are traced): layer 0's decode peak is flat for the first
    # ~64 steps and then follows the score matrix; it used to refuse the fit and trace all 127 steps
    source = resolve_model_source("deepseek-ocr-v1-base")
    model = source.build(attn_implementation="eager")
    work = attrs.evolve(preset_workload("dsocr-base-v1"), max_new_tokens=128)
    fit = trace_workload(source, work, attention="flash", model=model)
    every = trace_workload(source, work, attention="flash", model=model, decode="every-step")
    assert fit.decode_method == "affine-fit", fit.decode_note
    assert fit.nodes == every.nodes
    assert fit.op_ledger == every.op_ledger


def test_ordered_keys_are_first_seen_order_whatever_the_hash_seed() -> None:
    # a set of strings iterates in a per-process order (PYTHONHASHSEED); the fits name the first failing counter and
    # build their tables in this order, so reports stay byte-identical between processes
    maps = [{("b", "x"): 1, ("a", "y"): 2}, {("c", "z"): 3, ("b", "x"): 4}]
    assert ordered_keys(maps) == [("b", "x"), ("a", "y"), ("c", "z")]
