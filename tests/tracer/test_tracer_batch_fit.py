"""Batch extrapolation: the arithmetic, its refusals, and extrapolated == every row traced, on every node."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from torch import nn

from llm_perf_opt.core.counts import COST_FIELDS, Counters
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer import engine
from llm_perf_opt.tracer.batch_fit import EXTRAPOLATE_FROM, BatchFitError, extrapolate_stages, split_stages
from llm_perf_opt.tracer.raw import RawTrace
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.trace import ONE_CALL_NOTE, _extrapolates, trace_workload
from llm_perf_opt.workloads import RoutingModel, preset_workload

KEY = ("vision", "sam.blocks.0", "linear", "aten.mm.default")


def _raw(b: int, *, flops: int, peak: int, sig: tuple[str, ...] = ("aten.mm.default",)) -> RawTrace:
    raw = RawTrace()
    raw.table[KEY] = Counters(
        kernels=b, matmul_flops=flops, matmul_flops_executed=flops, bytes_read=10 * b, weight_bytes_read=7
    )
    raw.calls[("vision", "sam.blocks.0")] = b
    raw.peaks[("vision", "sam.blocks.0")] = peak
    raw.sigs[("vision", "sam.blocks.0")] = dict.fromkeys(sig)
    raw.chain[("vision", "sam.blocks")] = [2 * b, 0]
    raw.op_buckets["aten.mm.default"] = ("counted", "mm", "")
    return raw


def test_additive_counters_are_extrapolated_and_levels_follow_the_later_points() -> None:
    # flops 100*b + 5; the peak of batch 1 is special (no previous row alive), 40 + 3*b from batch 2 on
    points = {b: _raw(b, flops=100 * b + 5, peak=(42 if b == 1 else 40 + 3 * b)) for b in (1, 2, 3)}
    out = extrapolate_stages(points, 32)
    assert out.table[KEY] == Counters(
        kernels=32, matmul_flops=3205, matmul_flops_executed=3205, bytes_read=320, weight_bytes_read=7
    )
    assert out.calls[("vision", "sam.blocks.0")] == 32
    assert out.peaks[("vision", "sam.blocks.0")] == 40 + 3 * 32
    assert out.chain[("vision", "sam.blocks")] == [64, 0]
    assert extrapolate_stages(points, 1).peaks[("vision", "sam.blocks.0")] == 42


def test_non_affine_counters_and_changing_signatures_are_refused() -> None:
    points = {b: _raw(b, flops=b * b, peak=1) for b in (1, 2, 3)}
    with pytest.raises(BatchFitError, match=r"'aten.mm.default'\) matmul_flops: 1, 4, 9 at batch 1, 2, 3"):
        extrapolate_stages(points, 8)
    points = {b: _raw(b, flops=b, peak=1, sig=("aten.mm.default",) * (1 if b < 3 else 2)) for b in (1, 2, 3)}
    points[3].sigs[("vision", "sam.blocks.0")]["aten.add.Tensor"] = None
    with pytest.raises(BatchFitError, match="trace signature"):
        extrapolate_stages(points, 8)
    falling = {b: _raw(b, flops=b, peak=100 - 40 * b) for b in (1, 2, 3)}
    with pytest.raises(BatchFitError, match="not a non-negative integer"):
        extrapolate_stages(falling, 8)


def test_split_stages_keeps_op_buckets_with_their_rows() -> None:
    raw = _raw(1, flops=1, peak=1)
    raw.table[("prefill", "layers.0", "linear", "aten.addmm.default")] = Counters.from_values([1] * len(COST_FIELDS))
    raw.op_buckets["aten.addmm.default"] = ("counted", "addmm", "")
    rows, rest = split_stages(raw, ("vision",))
    assert set(rows.op_buckets) == {"aten.mm.default"} and set(rest.op_buckets) == {"aten.addmm.default"}
    assert all(k[0] == "vision" for k in rows.calls) and not rest.calls


# -- end to end: the built-in v1 model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1() -> tuple[Any, nn.Module]:
    source = resolve_model_source("deepseek-ocr-v1-base")
    return source, source.build(attn_implementation="sdpa")


def _same(extrapolated: TraceResult, full: TraceResult) -> None:
    assert extrapolated.batch_method == "extrapolated", extrapolated.batch_note
    assert full.batch_method == "traced"
    assert list(extrapolated.nodes) == list(full.nodes)
    for node_id, node in full.nodes.items():
        assert extrapolated.nodes[node_id] == node, node_id
    assert extrapolated.op_ledger == full.op_ledger
    assert extrapolated.unsupported == full.unsupported
    assert extrapolated.uncalled_modules == full.uncalled_modules
    assert (extrapolated.decode_method, extrapolated.decode_note) == (full.decode_method, full.decode_note)


def _both(v1: tuple[Any, nn.Module], work: Any, routing: RoutingModel) -> tuple[TraceResult, TraceResult]:
    source, model = v1
    kwargs: dict[str, Any] = {"model": model, "routing": routing}
    return (
        trace_workload(source, work, batch="extrapolate", **kwargs),
        trace_workload(source, work, batch="every-row", **kwargs),
    )


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_v1_gundam_extrapolated_equals_every_row(v1: tuple[Any, nn.Module], batch: int) -> None:
    # crops and a global view per row; decode fitted from 3 of 5 steps; at batch 1..10 decode touches 6*batch
    # experts of 64, so expert coverage changes between the points and the target
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), batch_size=batch, max_new_tokens=6)
    _same(*_both(v1, work, RoutingModel.balanced()))


@pytest.mark.slow
def test_v1_batch_32_extrapolated_equals_every_row(v1: tuple[Any, nn.Module]) -> None:
    # every row traced costs 32 vision passes: the Tiny mode keeps that short
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), batch_size=32, max_new_tokens=6)
    _same(*_both(v1, work, RoutingModel.balanced()))


@pytest.mark.parametrize(("alpha", "batch"), [(1.2, 3), (8.0, 8), pytest.param(1.2, 32, marks=pytest.mark.slow)])
def test_v1_skewed_routing_extrapolated_equals_every_row(v1: tuple[Any, nn.Module], alpha: float, batch: int) -> None:
    # alpha 8 starves the unpopular experts: which experts run at all depends on the batch
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), batch_size=batch, max_new_tokens=6)
    _same(*_both(v1, work, RoutingModel.skewed(alpha)))


def test_v1_eager_extrapolated_equals_every_row(v1: tuple[Any, nn.Module]) -> None:
    # eager attention builds its causal mask between the image injection and the first layer: a full pass counts it
    # in the projector stage, once; the language-only prefill must not count it a second time
    source, _ = v1
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), batch_size=3, max_new_tokens=2)
    kwargs: dict[str, Any] = {"model": source.build(attn_implementation="eager"), "attention": "eager"}
    _same(
        trace_workload(source, work, batch="extrapolate", **kwargs),
        trace_workload(source, work, batch="every-row", **kwargs),
    )


def test_auto_extrapolates_large_batches_only(v1: tuple[Any, nn.Module]) -> None:
    source, model = v1
    small = attrs.evolve(preset_workload("dsocr-tiny-v1"), batch_size=2, max_new_tokens=2)
    assert trace_workload(source, small, model=model).batch_method == "traced"
    large = attrs.evolve(small, batch_size=9)
    result = trace_workload(source, large, model=model)
    assert result.batch_method == "extrapolated"
    assert result.batch_note == (
        "vision and projector traced at batch 1, 2, 3 and extrapolated to 9; language traced at batch 9"
    )


def test_a_refused_fit_falls_back_to_every_row_and_says_why(
    v1: tuple[Any, nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(points: Any, batch: int) -> RawTrace:
        raise BatchFitError("vision/sam matmul_flops: 1, 4, 9 at batch 1, 2, 3")

    monkeypatch.setattr(engine, "extrapolate_stages", refuse)
    source, model = v1
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), batch_size=2, max_new_tokens=2)
    result = trace_workload(source, work, model=model, batch="extrapolate")
    full = trace_workload(source, work, model=model, batch="every-row")
    assert result.batch_method == "traced"
    assert result.batch_note == (
        "batch extrapolation refused (vision/sam matmul_flops: 1, 4, 9 at batch 1, 2, 3); traced all 2 rows"
    )
    assert result.nodes == full.nodes and result.op_ledger == full.op_ledger


# -- DeepSeek-OCR-2 (transformers' model; vision batched over rows, its own driver and anchors) -----------------


@pytest.mark.slow
@pytest.mark.parametrize(("batch", "routing"), [(1, "balanced"), (3, "balanced"), (8, "skewed:8"), (32, "skewed:1.2")])
def test_ocr2_refuses_extrapolation_and_equals_every_row(ocr2: tuple[Any, nn.Module], batch: int, routing: str) -> None:
    from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload

    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=6, batch_size=batch)
    extrapolated, full = _both(ocr2, work, RoutingModel.parse(routing))
    # transformers' model runs every row of a batch in one call whose counters are not affine in the batch (seen:
    # SAM attention copies of 981,467,136 / 1,988,100,096 / 2,982,150,144 bytes at batch 1, 2, 3; projector views
    # 1, 2, 2 - which one is named first depends on the order the check meets them), so the fit is refused and every
    # row is traced: slower, never wrong
    assert extrapolated.batch_method == "traced"
    assert extrapolated.batch_note.startswith("batch extrapolation refused (")
    assert extrapolated.nodes == full.nodes and extrapolated.op_ledger == full.op_ledger


@pytest.mark.slow
def test_ocr2_auto_traces_every_row_at_once(ocr2: tuple[Any, nn.Module]) -> None:
    from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload

    source, model = ocr2
    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=6, batch_size=EXTRAPOLATE_FROM)
    auto = trace_workload(source, work, model=model)
    # no vision traces at batch 1, 2, 3 first (their fit is refused, see above): one trace of every row
    assert (auto.batch_method, auto.batch_note) == ("traced", ONE_CALL_NOTE)
    full = trace_workload(source, work, model=model, batch="every-row")
    assert auto.nodes == full.nodes and auto.op_ledger == full.op_ledger


@pytest.mark.parametrize(
    ("one_call", "mode", "rows", "expected"),
    [
        (False, "auto", EXTRAPOLATE_FROM - 1, False),
        (False, "auto", EXTRAPOLATE_FROM, True),
        (True, "auto", EXTRAPOLATE_FROM, False),
        (True, "extrapolate", 2, True),
        (False, "every-row", 1024, False),
    ],
)
def test_which_traces_extrapolate_the_rows(one_call: bool, mode: Any, rows: int, expected: bool) -> None:
    source = SimpleNamespace(rows_in_one_call=True) if one_call else SimpleNamespace()
    assert _extrapolates(source, mode, rows) is expected  # type: ignore[arg-type]
