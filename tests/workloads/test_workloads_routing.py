"""Routing models: invariants (sum, cap, determinism), the balanced rotation, skew, histograms, parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llm_perf_opt.errors import UserError
from llm_perf_opt.workloads import RoutingModel, expected_distinct_experts

HIST = {"1": [8, 4, 2, 2, 0, 0, 0, 0], "2": [1, 1, 1, 1, 1, 1, 1, 1]}


def _models() -> st.SearchStrategy[RoutingModel]:
    return st.one_of(
        st.just(RoutingModel.balanced()),
        st.floats(0.0, 8.0).map(RoutingModel.skewed),
        st.just(RoutingModel.from_histogram(HIST)),
    )


def _with_counts(model: RoutingModel, layer: int) -> int:
    """Experts a histogram layer gives counts (top-k above that is refused); every expert for the other kinds."""
    return sum(1 for c in dict(model.histogram)[layer] if c) if model.kind == "histogram" else 8


@settings(max_examples=300, deadline=None)
@given(_models(), st.integers(0, 3000), st.integers(1, 8), st.integers(1, 2))
def test_invariants(model: RoutingModel, T: int, k: int, layer: int) -> None:
    E = 8
    assume(k <= _with_counts(model, layer))
    counts = model.expert_counts(layer_idx=layer, num_tokens=T, num_experts=E, top_k=k)
    assert len(counts) == E
    assert sum(counts) == T * k
    assert all(0 <= c <= T for c in counts)
    assert counts == model.expert_counts(layer_idx=layer, num_tokens=T, num_experts=E, top_k=k)


@settings(max_examples=100, deadline=None)
@given(_models(), st.integers(1, 40), st.integers(1, 8))
def test_assignment_is_k_distinct_experts_per_token(model: RoutingModel, T: int, k: int) -> None:
    assume(k <= _with_counts(model, 1))
    table = model.expert_assignment(layer_idx=1, num_tokens=T, num_experts=8, top_k=k)
    assert len(table) == T
    assert all(len(set(row)) == k == len(row) for row in table)
    counts = model.expert_counts(layer_idx=1, num_tokens=T, num_experts=8, top_k=k)
    assert [sum(row.count(e) for row in table) for e in range(8)] == list(counts)


def test_balanced_single_token_rotates_by_layer() -> None:
    model = RoutingModel.balanced()
    touched = []
    for layer in range(1, 12):
        counts = model.expert_counts(layer_idx=layer, num_tokens=1, num_experts=64, top_k=6)
        ones = [e for e, c in enumerate(counts) if c]
        assert sorted(counts)[-6:] == [1] * 6 and sum(counts) == 6
        assert ones == sorted((6 * layer + r) % 64 for r in range(6))
        touched.append(set(ones))
    assert touched[0].isdisjoint(touched[1])


def test_balanced_prefill_703_tokens() -> None:
    counts = RoutingModel().expert_counts(layer_idx=1, num_tokens=703, num_experts=64, top_k=6)
    # 703*6 = 4218 = 65*64 + 58: 58 experts get 66, 6 get 65
    assert sorted(counts) == [65] * 6 + [66] * 58


def test_skewed_is_zipf_like() -> None:
    counts = RoutingModel.skewed(0.5).expert_counts(layer_idx=0, num_tokens=703, num_experts=64, top_k=6)
    assert counts == tuple(sorted(counts, reverse=True))  # layer 0: rank order is expert order
    assert counts[0] == 289  # 4218 * 1 / sum(r**-0.5 for r in 1..64) = 4218 / 14.602 = 288.86, rounded up
    assert counts[0] / counts[3] == pytest.approx(2.0, rel=0.01)  # (1/4)**-0.5
    assert RoutingModel.skewed(0.0).expert_counts(
        layer_idx=0, num_tokens=703, num_experts=64, top_k=6
    ) == RoutingModel.balanced().expert_counts(layer_idx=0, num_tokens=703, num_experts=64, top_k=6)


def test_skewed_caps_hot_experts_at_token_count() -> None:
    counts = RoutingModel.skewed(3.0).expert_counts(layer_idx=2, num_tokens=10, num_experts=64, top_k=6)
    assert max(counts) == 10 and sum(counts) == 60
    by_rank = [counts[(12 + r) % 64] for r in range(64)]  # popularity order rotated by layer 2 * k 6
    # rank 1 share 60 * 1 / 1.202 = 49.9 > cap 10; its excess, re-shared, lifts ranks 2-4 over the cap too
    assert by_rank[:4] == [10] * 4
    assert by_rank == sorted(by_rank, reverse=True) and by_rank[4] < 10


def test_histogram_rescales_and_caps() -> None:
    model = RoutingModel.from_histogram(HIST, source="h.json")
    # layer 1 shares 8:4:2:2 of 4*2 = 8 assignments, cap 4 -> 4, then 4 left over 4:2:2 -> 2, 1, 1
    assert model.expert_counts(layer_idx=1, num_tokens=4, num_experts=8, top_k=2) == (4, 2, 1, 1, 0, 0, 0, 0)
    assert model.describe() == "histogram(h.json, layers 1..2)"


def test_a_layer_with_fewer_experts_than_top_k_is_refused_never_filled_up() -> None:
    model = RoutingModel.from_histogram(HIST, source="h.json")
    nonzero = sum(1 for c in dict(model.histogram)[1] if c)  # layer 1: 8, 4, 2, 2 -> 4 experts with counts
    assert nonzero == 4
    message = "layer 1 has 4 experts with counts; top-6 routing needs at least 6"
    with pytest.raises(UserError, match=message):  # where the counts are used (any model, any door)
        model.expert_counts(layer_idx=1, num_tokens=1, num_experts=8, top_k=6)
    with pytest.raises(UserError, match=message):
        model.check_top_k(6)
    model.check_top_k(nonzero)  # exactly k experts with counts is a valid top-k histogram
    assert sum(model.expert_counts(layer_idx=1, num_tokens=3, num_experts=8, top_k=4)) == 3 * 4
    one = RoutingModel.from_histogram({"1": [0] * 7 + [100]})
    with pytest.raises(UserError, match="layer 1 has 1 expert with counts; top-2 routing needs at least 2"):
        one.check_top_k(2)
    RoutingModel.balanced().check_top_k(6)
    RoutingModel.skewed(8.0).check_top_k(6)


def test_histogram_layer_and_size_errors() -> None:
    model = RoutingModel.from_histogram(HIST, source="h.json")
    with pytest.raises(UserError, match="has no counts for layer 3 \\(it covers layers 1, 2\\)"):
        model.expert_counts(layer_idx=3, num_tokens=4, num_experts=8, top_k=2)
    with pytest.raises(UserError, match="layer 1 lists 8 experts but the model has 64"):
        model.expert_counts(layer_idx=1, num_tokens=4, num_experts=64, top_k=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "must map layer index -> list of expert counts"),
        ({"x": [1]}, "layer key 'x' is not a non-negative layer index"),
        ({"1": [1, -1]}, "layer 1 must list non-negative integer counts per expert with a positive sum"),
        ({"1": [0, 0]}, "with a positive sum"),
        ({"1": "12"}, "layer 1 must list"),
    ],
)
def test_bad_histograms(data: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        RoutingModel.from_histogram(data)


def test_histogram_files(tmp_path: Path) -> None:
    js = tmp_path / "h.json"
    js.write_text(json.dumps(HIST), encoding="utf-8")
    ym = tmp_path / "h.yaml"
    ym.write_text("1: [8, 4, 2, 2, 0, 0, 0, 0]\n2: [1, 1, 1, 1, 1, 1, 1, 1]\n", encoding="utf-8")
    a, b = RoutingModel.parse(f"histogram:{js}"), RoutingModel.parse(f"histogram:{ym}")
    assert a.histogram == b.histogram == ((1, (8, 4, 2, 2, 0, 0, 0, 0)), (2, (1,) * 8))
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.json is not valid JSON/YAML"):
        RoutingModel.parse(f"histogram:{bad}")
    with pytest.raises(UserError, match=r"cannot read routing histogram .*missing\.json"):
        RoutingModel.parse(f"histogram:{tmp_path / 'missing.json'}")


def test_parse_and_describe() -> None:
    assert RoutingModel.parse("balanced") == RoutingModel.balanced()
    assert RoutingModel.parse("balanced").describe() == "balanced"
    assert RoutingModel.parse(" skewed:1.2 ").describe() == "skewed(alpha=1.2)"
    assert RoutingModel.parse("skewed:1.2") == RoutingModel.skewed(1.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uniform", "unknown routing 'uniform'; expected balanced, skewed:ALPHA"),
        ("skewed", "unknown routing 'skewed'"),
        ("balanced:2", "unknown routing 'balanced:2'"),
        ("skewed:abc", "skew alpha 'abc' is not a number"),
        ("skewed:-1", "skew alpha must be a number in 0..8, got -1.0"),
        ("histogram:", "unknown routing 'histogram:'"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        RoutingModel.parse(text)


def test_bad_call_arguments() -> None:
    with pytest.raises(ValueError, match="0 < top_k <= num_experts"):
        RoutingModel().expert_counts(layer_idx=1, num_tokens=1, num_experts=4, top_k=5)


def test_expected_distinct_experts_prior_art_numbers() -> None:
    assert expected_distinct_experts(E=64, k=6, T=1) == pytest.approx(6.0)
    assert expected_distinct_experts(E=64, k=6, T=8) == pytest.approx(64 * (1 - (58 / 64) ** 8))
    assert round(expected_distinct_experts(E=64, k=6, T=8)) == 35
    assert round(expected_distinct_experts(E=64, k=6, T=64)) == 64
    assert expected_distinct_experts(E=64, k=6, T=0) == 0.0
    with pytest.raises(ValueError):
        expected_distinct_experts(E=4, k=5, T=1)


def test_histogram_files_are_read_only_when_regular_and_small(tmp_path: Path) -> None:
    from llm_perf_opt.workloads.routing import MAX_HISTOGRAM_FILE_BYTES

    fifo = tmp_path / "h.json"
    os.mkfifo(fifo)  # opening a FIFO for reading would block until a writer comes: refused before the open
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * MAX_HISTOGRAM_FILE_BYTES + b"}")
    for path, words in {
        fifo: "not a regular file",
        tmp_path: "a folder",
        big: "larger than",
        "/dev/zero": "FIFO",
    }.items():
        with pytest.raises(UserError, match=words):
            RoutingModel.parse(f"histogram:{path}")


def test_inline_histogram_json_never_names_a_file() -> None:
    model = RoutingModel.parse('histogram:{"3": [1, 0, 2]}')
    assert (model.kind, model.source, model.histogram) == ("histogram", "inline", ((3, (1, 0, 2)),))
    with pytest.raises(UserError, match="not valid JSON"):
        RoutingModel.parse("histogram:{nope")
    with pytest.raises(UserError, match=r"0\.\.8"):
        RoutingModel.skewed(float("nan"))
