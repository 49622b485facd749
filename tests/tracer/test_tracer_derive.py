"""Another output length from a trace's decode basis: equal to tracing it, on every node; refusals; the JSON form."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from torch import nn

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.derive import (
    DecodeBasis,
    DeriveError,
    basis_from_json,
    basis_to_json,
    decode_basis,
    derive_output_length,
)
from llm_perf_opt.tracer.nodedata import NodeData
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.trace import trace_with_basis
from llm_perf_opt.workloads import RoutingModel, preset_workload

Built = tuple[Any, nn.Module]


@pytest.fixture(scope="module")
def v1() -> Built:
    source = resolve_model_source("deepseek-ocr-v1-base")
    return source, source.build(attn_implementation="sdpa")


@pytest.fixture(scope="module")
def v1_eager() -> Built:
    source = resolve_model_source("deepseek-ocr-v1-base")
    return source, source.build(attn_implementation="eager")


def _trace(built: Built, work: Any, **options: Any) -> tuple[TraceResult, DecodeBasis | None]:
    source, model = built
    result, _, basis = trace_with_basis(source, work, model=model, **options)
    return result, basis


def _same(derived: TraceResult, full: TraceResult) -> None:
    assert list(derived.nodes) == list(full.nodes)
    for node_id, node in full.nodes.items():
        assert derived.nodes[node_id] == node, node_id
    assert derived.op_ledger == full.op_ledger
    assert derived.unsupported == full.unsupported
    assert derived.uncalled_modules == full.uncalled_modules
    assert (derived.workload, derived.max_new_tokens) == (full.workload, full.max_new_tokens)


def _derived_equals_traced(
    built: Built, work: Any, targets: tuple[int, ...], *, far: int, covers: int, **options: Any
) -> None:
    """Trace ``work`` with its decode basis traced out to ``far`` new tokens (it must cover ``covers`` steps); at
    each target length the derived trace equals a full trace, or (past what the basis covers) is refused."""
    base, basis = _trace(built, work, far_new_tokens=far, **options)
    assert base.decode_method == "affine-fit" and basis is not None
    assert basis.covers == covers
    basis = basis_from_json(json.loads(json.dumps(basis_to_json(basis))))  # as the cache reads it back
    for n_new in targets:
        target = attrs.evolve(work, max_new_tokens=n_new)
        if n_new - 1 > covers:
            with pytest.raises(DeriveError, match="past the"):
                derive_output_length(base, basis, max_new_tokens=n_new, workload=target.describe())
            continue
        derived = derive_output_length(base, basis, max_new_tokens=n_new, workload=target.describe())
        _same(derived, _trace(built, target, **options)[0])


def test_v1_standard_derived_from_64_equals_traced_at_other_lengths(v1: Built) -> None:
    # shorter (every step traced there: 1 and 2 steps), inside, and 8x beyond the traced steps
    # S = 703: the context (8,192) leaves 7,490 new tokens; the basis covers all 7,489 steps
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=64)
    _derived_equals_traced(v1, work, (1, 2, 3, 40, 512, 7490), far=7490, covers=7489)


def test_v1_eager_attention_and_skewed_routing(v1_eager: Built) -> None:
    # eager decode materialises the score matrix: past some length it is the attention's peak, which is flat over
    # the traced steps and grows after them - the far step is off the line, so the basis covers 15 steps only
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), max_new_tokens=16)
    options: dict[str, Any] = {"attention": "eager", "routing": RoutingModel.skewed(1.2)}
    _derived_equals_traced(v1_eager, work, (5, 16, 300), far=8000, covers=15, **options)


def test_v1_batch_extrapolated_trace(v1: Built) -> None:
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), max_new_tokens=9, batch_size=8)
    _derived_equals_traced(v1, work, (33,), far=100, covers=99)


@pytest.mark.slow
def test_ocr2_derived_equals_traced() -> None:
    from llm_perf_opt.sources.deepseek_ocr2 import config as ocr2_config
    from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload
    from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple

    if version_tuple(installed_transformers() or "0") < ocr2_config.MIN_TRANSFORMERS:
        pytest.skip("needs transformers >= 5.10.1")
    source = resolve_model_source("deepseek-ocr-2")
    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=20, batch_size=1)
    _derived_equals_traced((source, source.build()), work, (3, 200), far=1000, covers=999)


def test_no_basis_without_a_fitted_decode(v1: Built) -> None:
    work = attrs.evolve(preset_workload("dsocr-tiny-v1"), max_new_tokens=4)  # 3 steps: every step traced
    result, basis = _trace(v1, work)
    assert result.decode_method == "every-step" and basis is None


# -- refusals, on hand-made node data ------------------------------------------------------------------------


def _step(peak: int, flops: int) -> NodeData:
    data = NodeData()
    data.table[("decode", ("lin",), "linear", "aten.mm.default")] = Counters(kernels=1, matmul_flops=flops)
    data.calls[("decode", ("lin",))] = 1
    data.peaks[("decode", ("lin",))] = peak
    return data


def _basis(peaks: tuple[int, int, int], flops: tuple[int, int, int] = (10, 12, 14)) -> DecodeBasis:
    steps = {i: _step(p, f) for i, p, f in zip((1, 3, 5), peaks, flops, strict=True)}
    return DecodeBasis(
        prefill=NodeData(), steps=steps, decode_steps=5, covers=100, buckets={"aten.mm.default": ("counted", "mm", "")}
    )


def _skeleton() -> TraceResult:
    from llm_perf_opt.core import Cost
    from llm_perf_opt.tracer.result import TracedNode

    def node(nid: str, parent: str | None, children: tuple[str, ...]) -> TracedNode:
        stage = "other" if nid == "root" else "decode"
        return TracedNode(
            module_id=nid,
            stage=stage,
            parent_id=parent,
            children=children,
            calls=0,
            cost=Cost(),  # type: ignore[arg-type]
            by_category={},
            weight_bytes=0,
            peak_activation_bytes=0,
            kv_cache_bytes=0,
        )

    nodes = {"root": node("root", None, ("decode",)), "decode": node("decode", "root", ("decode/lin",))}
    nodes["decode/lin"] = node("decode/lin", "decode", ())
    return TraceResult(
        model="toy",
        workload="toy",
        seq_len=4,
        max_new_tokens=4,
        attention="flash",
        routing="balanced",
        decode_method="affine-fit",
        decode_note="",
        nodes=nodes,
        op_ledger={},
        unsupported=(),
        uncalled_modules=(),
        categories={},
    )


def test_an_affine_toy_is_integrated_in_closed_form() -> None:
    derived = derive_output_length(_skeleton(), _basis((5, 7, 9)), max_new_tokens=11, workload="toy N=11")
    lin = derived.nodes["decode/lin"]
    # steps 1, 3, 5 traced: flops 10 + (i - 1), peak 5 + (i - 1)
    assert lin.cost.matmul_flops == sum(10 + (i - 1) for i in range(1, 11))  # 145
    assert lin.calls == 10 and lin.peak_activation_bytes == 5 + 9  # v(10)
    assert derived.nodes["decode"].repetition_count == 10 and derived.root.calls == 11
    assert derived.op_ledger["aten.mm.default"].count == 10
    prefill_only = derive_output_length(_skeleton(), _basis((5, 7, 9)), max_new_tokens=1, workload="toy N=1")
    assert set(prefill_only.nodes) == {"root"} and prefill_only.root.children == ()
    assert (prefill_only.decode_method, prefill_only.root.calls) == ("none", 1)


def test_three_steps_off_one_line_keep_no_basis_and_other_refusals() -> None:
    # a peak with a kink between the traced steps (flat, then growing): no other length can be derived from them
    kinked = _basis((5, 5, 9))
    assert decode_basis(NodeData(), kinked.steps, None, decode_steps=5, buckets=kinked.buckets) is None
    with pytest.raises(DeriveError, match="not affine in the step"):
        derive_output_length(_skeleton(), kinked, max_new_tokens=11, workload="toy")
    with pytest.raises(DeriveError, match="at least one token"):
        derive_output_length(_skeleton(), _basis((5, 7, 9)), max_new_tokens=0, workload="toy")
    with pytest.raises(DeriveError, match="not an integer"):
        # flops 10 + (i - 1) / 2: 10 + 10.5 over two steps
        derive_output_length(_skeleton(), _basis((5, 7, 9), flops=(10, 11, 12)), max_new_tokens=3, workload="toy")
    with pytest.raises(DeriveError, match="past the 100"):
        derive_output_length(_skeleton(), _basis((5, 7, 9)), max_new_tokens=102, workload="toy")
