"""Another batch from a batch basis: equal to tracing it on every node; the laws, the sort rule, refusals, JSON."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import attrs
import pytest
from torch import nn

from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer import batch_derive, engine
from llm_perf_opt.tracer.batch_derive import (
    LAST,
    BatchBasis,
    BatchDeriveError,
    MemberLaw,
    MoeLayer,
    _sort_length,
    batch_basis_from_json,
    batch_basis_to_json,
    called_experts,
    check_basis,
    choose_points,
    derive_batch,
    fit_member_law,
    low_points,
    member_layout,
)
from llm_perf_opt.tracer.ops.formulas import sort_flops
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.trace import trace_with_bases
from llm_perf_opt.workloads import RoutingModel, preset_workload

FAR = 40


@pytest.fixture(scope="module")
def v1() -> tuple[Any, nn.Module]:
    source = resolve_model_source("deepseek-ocr-v1-base")
    return source, source.build(attn_implementation="sdpa")


def _trace(v1: tuple[Any, nn.Module], batch: int, routing: RoutingModel, **kw: Any) -> Any:
    source, model = v1
    preset = "dsocr-tiny-v1" if "tiny" in source.name else "dsocr-standard-v1"
    work = attrs.evolve(preset_workload(preset), batch_size=batch, max_new_tokens=6)
    return trace_with_bases(source, work, model=model, routing=routing, far_new_tokens=FAR, **kw)


@pytest.fixture(scope="module")
def built(v1: tuple[Any, nn.Module]) -> tuple[TraceResult, BatchBasis]:
    result, _, _, basis = _trace(v1, 16, RoutingModel.balanced(), batch_basis=(1, 1024))
    assert basis is not None
    return result, basis


def _same(derived: TraceResult, traced: TraceResult) -> None:
    assert derived.nodes == traced.nodes
    assert derived.op_ledger == traced.op_ledger
    assert derived.unsupported == traced.unsupported


def test_balanced_points_start_where_every_expert_is_routed_to(built: tuple[TraceResult, BatchBasis]) -> None:
    # decode: 64 experts, top-6: 6*B assignments reach every expert from B = 11 (64/6 = 10.7); the trace's own
    # batch (16) lies between 11 and 1,024, so it is the middle point (its language passes are that point's)
    assert built[1].points == (11, 16, 1024)
    # and the batches below the first point that it keeps too, so it derives every batch from 1 on
    assert built[1].low == (1, 2, 3, 4) and built[1].lowest == 1


def test_the_traced_batchs_language_passes_are_not_traced_again(
    v1: tuple[Any, nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    run_pass = engine._run_pass

    def counted(state: Any, stage: str, *args: Any, **kwargs: Any) -> Any:
        runs.append(stage)
        return run_pass(state, stage, *args, **kwargs)

    monkeypatch.setattr(engine, "_run_pass", counted)
    _, _, _, basis = _trace(v1, 11, RoutingModel.balanced(), batch_basis=(1, 1024))
    assert basis is not None and basis.points == (11, 106, 1024)  # at the first point: choose_points' own
    steps = len(basis.passes[11]) - 1  # decode steps (and the far one) of each point
    # the trace at 11 (vision at 1, 2, 3 stopping before the language; its prefill; its steps), then the low points
    # 1, 2, 3, 4 and the points 106 and 1,024
    assert runs.count("decode") == (3 + 4) * steps and runs.count("prefill") == 3 + 1 + 4 + 2


@pytest.mark.parametrize("batch", [1, 3, 8, 11, 37, 1024])
def test_derived_equals_traced_on_every_node(
    v1: tuple[Any, nn.Module], built: tuple[TraceResult, BatchBasis], batch: int
) -> None:
    skeleton, basis = built
    traced, _, decode, _ = _trace(v1, batch, RoutingModel.balanced())
    derived, derived_decode = derive_batch(
        basis, skeleton, batch=batch, routing=RoutingModel.balanced(), workload=traced.workload
    )
    _same(derived, traced)
    assert derived_decode == decode  # another output length at this batch derives as a trace at it would


@pytest.mark.slow
def test_skewed_routing_and_eager_attention(v1: tuple[Any, nn.Module]) -> None:
    # skewed: the least popular experts get their first token later, so the points start higher; the trace at 16
    # lies below them and still keeps the basis (checked at its three points)
    source, _ = v1
    eager = (source, source.build(attn_implementation="eager"))
    skewed = RoutingModel.skewed(1.2)
    skeleton, _, _, basis = _trace(eager, 16, skewed, batch_basis=(1, 1024), attention="eager")
    assert basis is not None and basis.points[0] > 16
    # eager attention runs one more view at batch 1 than its line through the other batches says: the basis
    # keeps the low points from 2 on, and batch 1 is traced
    assert basis.low == (2, 3, 4)
    for batch in (2, 30, 300):  # below the first point (42) with fewer experts called, and inside the range
        traced, _, _, _ = _trace(eager, batch, skewed, attention="eager")
        derived, _ = derive_batch(basis, skeleton, batch=batch, routing=skewed, workload=traced.workload)
        _same(derived, traced)
    with pytest.raises(BatchDeriveError, match=r"outside the 2\.\.1024"):
        derive_batch(basis, skeleton, batch=1, routing=skewed, workload="w")


@pytest.mark.slow
@pytest.mark.parametrize("routing", ["balanced", "skewed:1.2"])
def test_ocr2_keeps_a_basis_of_every_stage_that_derives_as_traced(ocr2: tuple[Any, nn.Module], routing: str) -> None:
    from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload

    source, model = ocr2
    route = RoutingModel.parse(routing)
    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=6, batch_size=16)

    def trace(batch: int, **kw: Any) -> Any:
        at = attrs.evolve(work, batch_size=batch)
        return trace_with_bases(source, at, model=model, routing=route, far_new_tokens=FAR, **kw)

    skeleton, _, _, basis = trace(16, batch_basis=(1, 1024))
    # its vision encodes every row in one call: the prefill passes hold every stage (no rows); its SAM attention copies
    # are off their line at batch 1 only, so the basis derives from 2 (batch 1 is traced); the fused experts' peaks
    # follow their last call (MoeLayer.fused)
    assert basis is not None and basis.rows == {} and basis.low == (2, 3, 4)
    assert all(layer.fused for layer in basis.moe) and len(basis.moe) == 11
    assert batch_basis_from_json(json.loads(json.dumps(batch_basis_to_json(basis)))) == basis  # as the cache keeps it
    for batch in (3, 8, 32):  # below the first point (11 balanced, 42 skewed) and inside the range
        traced, _, decode, _ = trace(batch)
        derived, derived_decode = derive_batch(basis, skeleton, batch=batch, routing=route, workload=traced.workload)
        _same(derived, traced)
        assert derived_decode == decode
        assert derived.batch_note.startswith(f"every stage derived at batch {batch} from batch 2, 3, 4, ")
    with pytest.raises(BatchDeriveError, match=r"outside the 2\.\.1024"):
        derive_batch(basis, skeleton, batch=1, routing=route, workload="w")


def test_batches_outside_the_points_or_at_another_coverage_are_refused(
    built: tuple[TraceResult, BatchBasis],
) -> None:
    skeleton, basis = built
    without_low = attrs.evolve(basis, low=(), passes={p: basis.passes[p] for p in basis.points})
    with pytest.raises(BatchDeriveError, match=r"outside the 11\.\.1024"):  # 6*10 = 60 < 64 decode assignments
        derive_batch(without_low, skeleton, batch=10, routing=RoutingModel.balanced(), workload="w")
    with pytest.raises(BatchDeriveError, match=r"outside the 1\.\.1024"):
        derive_batch(basis, skeleton, batch=1025, routing=RoutingModel.balanced(), workload="w")
    with pytest.raises(BatchDeriveError, match="routes to other experts"):
        derive_batch(basis, skeleton, batch=100, routing=RoutingModel.skewed(8.0), workload="w")


def test_a_low_point_off_its_laws_is_caught(built: tuple[TraceResult, BatchBasis]) -> None:
    basis = built[1]
    check_basis(basis, routing=RoutingModel.balanced())
    # one more kernel of one op at batch 3: no law through the other batches gives it
    prefill = basis.passes[3]["prefill"]
    key = next(k for k in prefill.table if k[1][-1:] == ("mlp",))
    row = prefill.table[key].copy()
    row.kernels += 1
    table = {**prefill.table, key: row}
    tampered = {**basis.passes, 3: {**basis.passes[3], "prefill": attrs.evolve(prefill, table=table)}}
    with pytest.raises(BatchDeriveError, match="prefill at batch 3"):
        check_basis(attrs.evolve(basis, passes=tampered), routing=RoutingModel.balanced())


def test_the_json_form_reads_back_the_same_basis(built: tuple[TraceResult, BatchBasis]) -> None:
    basis = built[1]
    assert batch_basis_from_json(json.loads(json.dumps(batch_basis_to_json(basis)))) == basis


# -- the pieces -------------------------------------------------------------------------------------------------------


def test_a_member_law_is_solved_exactly_and_checked_on_every_member() -> None:
    law = MemberLaw(alpha=Fraction(512), beta=Fraction(26248), gamma=Fraction(2560), delta=Fraction(5376))
    points = [(b, p, s) for b in (11, 106, 1024) for p, s in ((0, 2), (2, 1), (7, 3), (40, 2))]
    observations = [(b, p, s, int(law.at(batch=b, prefix=p, size=s))) for b, p, s in points]
    assert fit_member_law(observations) == law
    observations[-1] = (*observations[-1][:3], observations[-1][3] + 1)
    assert fit_member_law(observations) is None
    # fewer than four independent observations determine nothing
    assert fit_member_law([(11, 0, 2, 100), (11, 0, 2, 100)]) is None


def test_a_fused_layers_law_has_no_prefix_term_and_is_kept_only_when_checked() -> None:
    # a fused layer's last call has every other routed token before it: prefix = k*T(B) - size, so the law is
    # alpha + beta*B + delta*size (three unknowns), and three observations alone check nothing
    law = MemberLaw(alpha=Fraction(1000), beta=Fraction(77), gamma=Fraction(0), delta=Fraction(5376))
    sizes = {2: 3, 3: 4, 11: 11, 106: 100, 1024: 960}
    observations = [(b, 6 * b - s, s, int(law.at(batch=b, prefix=0, size=s))) for b, s in sizes.items()]
    assert fit_member_law(observations, fused=True) == law
    assert fit_member_law(observations[:3], fused=True) is None  # determined, not checked
    observations[1] = (*observations[1][:3], observations[1][3] + 1)
    assert fit_member_law(observations, fused=True) is None
    # the per-expert law has four unknowns, and the prefix column of a fused layer is never independent of the others
    assert fit_member_law(observations, fused=False) is None


def test_a_fused_law_fitted_on_a_slice_line_holds_only_on_that_line() -> None:
    # skewed routing gives its first expert one slot of every token: the last slice is S*B at every batch, so the law
    # is alpha + beta*B there (the slice adds nothing the batch does not), kept with that line
    observations = [(b, 5 * 843 * b, 843 * b, 66_772_451 * b + 8536) for b in (2, 3, 4, 42, 207, 1024)]
    law = fit_member_law(observations, fused=True)
    assert law == MemberLaw(
        alpha=Fraction(8536),
        beta=Fraction(66_772_451),
        gamma=Fraction(0),
        delta=Fraction(0),
        size_line=(Fraction(0), Fraction(843)),
    )
    layer = MoeLayer(path="m", layer_idx=1, experts=4, top_k=2, fused=True)
    basis = BatchBasis(
        points=(2, 3, 4),
        passes={},
        tokens={"prefill": 843},
        moe=(layer,),
        members={("prefill", ("m", "experts")): ((0, LAST),)},
        laws={("prefill", ("prefill", ("m", "experts"))): law},
        rows={},
        row_patterns={},
        decode_steps=0,
        far=None,
        buckets={},
    )
    on_line = RoutingModel.skewed(8.0)  # (its first expert's slice of 843*B tokens, top-2 of 4: every token's first)
    assert member_layout(layer, on_line, 843 * 5)[LAST] == (843 * 5, 843 * 5)
    assert batch_derive._expert_peaks(basis, "prefill", batch=5, routing=on_line) == {
        ("prefill", ("m", "experts")): 66_772_451 * 5 + 8536
    }
    with pytest.raises(BatchDeriveError, match="off the line"):  # balanced: 843*5*2/4 tokens each
        batch_derive._expert_peaks(basis, "prefill", batch=5, routing=RoutingModel.balanced())


def test_a_fused_layers_last_call_has_the_largest_slice_and_every_other_token_before_it() -> None:
    layer = MoeLayer(path="m", layer_idx=1, experts=64, top_k=6, fused=True)
    routing = RoutingModel.skewed(1.2)
    layout = member_layout(layer, routing, 100)
    sizes = [layout[e][1] for e in range(64)]
    assert layout[LAST] == (600 - max(sizes), max(sizes))
    assert LAST not in member_layout(attrs.evolve(layer, fused=False), routing, 100)


@pytest.mark.parametrize("n", [2, 3, 96, 4218, 4_318_272])
def test_a_sorts_length_is_read_back_from_its_comparisons(n: int) -> None:
    assert _sort_length(sort_flops(numel=n, n=n)) == n
    assert _sort_length(sort_flops(numel=n, n=n) + 1) is None


def test_the_low_points_are_those_below_the_first_point() -> None:
    assert low_points(11) == (1, 2, 3, 4)
    assert low_points(3) == (1, 2)
    assert low_points(1) == ()


def test_the_middle_point_has_the_last_points_coverage_where_it_is_not_monotone() -> None:
    # skewed:8 reaches 63 experts of 64 in a decode step of 1,009 and of 1,024 rows, but all 64 at 1,016 (the geometric
    # mean of the two): the middle point is the nearest batch that calls what 1,024 calls
    moe = (MoeLayer(path="m.layers.1.mlp", layer_idx=1, experts=64, top_k=6),)
    skewed = RoutingModel.skewed(8.0)
    tokens = {"prefill": 703, "step": 1}
    p1, p2, p3 = choose_points(moe, skewed, tokens, low=1, high=1024) or (0, 0, 0)
    target = called_experts(moe, skewed, tokens, p3)
    assert called_experts(moe, skewed, tokens, p1) == called_experts(moe, skewed, tokens, p2) == target
    mean = round((p1 * p3) ** 0.5)
    assert all(
        called_experts(moe, skewed, tokens, b) != target for b in range(p1 + 1, p3) if abs(b - mean) < abs(p2 - mean)
    )


def test_points_follow_the_routing_models_coverage() -> None:
    moe = (MoeLayer(path="m.layers.1.mlp", layer_idx=1, experts=64, top_k=6),)
    tokens = {"prefill": 703, "step": 1}
    assert choose_points(moe, RoutingModel.balanced(), tokens, low=1, high=1024) == (11, 106, 1024)
    assert choose_points(moe, RoutingModel.balanced(), tokens, low=1, high=12) is None  # 11, 12: two batches


def test_every_batch_below_the_first_point_is_derived_as_traced() -> None:
    # the tiny model under skewed:2 calls every expert from batch 18 on: each batch below it calls fewer, in its own
    # pattern per layer; the basis traced 1, 2, 3, 4 and derives the others
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    tiny = (source, source.build(attn_implementation="sdpa"))
    skewed = RoutingModel.skewed(2.0)
    skeleton, _, _, basis = _trace(tiny, 16, skewed, batch_basis=(1, 1024))
    assert basis is not None and basis.low == (1, 2, 3, 4) and basis.points[0] == 18
    for batch in range(1, basis.points[0] + 1):
        traced, _, decode, _ = _trace(tiny, batch, skewed)
        derived, derived_decode = derive_batch(basis, skeleton, batch=batch, routing=skewed, workload=traced.workload)
        _same(derived, traced)
        assert derived_decode == decode


def test_the_basis_without_its_low_batches_is_handed_over_before_they_are_traced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    tiny = (source, source.build(attn_implementation="sdpa"))
    prefills: list[str] = []
    run_pass = engine._run_pass

    def counted(state: Any, stage: str, *args: Any, **kwargs: Any) -> Any:
        prefills.extend([stage] if stage == "prefill" else [])
        return run_pass(state, stage, *args, **kwargs)

    monkeypatch.setattr(engine, "_run_pass", counted)
    early: list[tuple[int, BatchBasis]] = []
    _, _, _, basis = _trace(
        tiny,
        16,
        RoutingModel.skewed(2.0),
        batch_basis=(1, 1024),
        early_basis=lambda result, b: early.append((len(prefills), b)),
    )
    assert basis is not None and basis.low == (1, 2, 3, 4)
    ((seen, first),) = early
    assert first.low == () and first.points == basis.points
    assert len(prefills) - seen == 4  # the low batches' prefills came after it


def test_the_traced_batch_is_the_middle_point_only_at_the_last_points_coverage() -> None:
    # skewed:8 on the tiny model: 545 rows call other experts than 541 and 1,024 do, so a trace at 545 keeps the
    # basis with the middle point choose_points gives, not with 545
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    tiny = (source, source.build(attn_implementation="sdpa"))
    skewed = RoutingModel.skewed(8.0)
    _, _, _, basis = _trace(tiny, 545, skewed, batch_basis=(1, 1024))
    assert basis is not None and basis.points == (541, 752, 1024) and basis.low == (1, 2, 3, 4)
