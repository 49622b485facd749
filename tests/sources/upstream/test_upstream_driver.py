"""Tracing the fixture end to end: prefill and decode driven directly, adapters recorded with their uses, golden
trees, and drift (a renamed module, a changed expert count) named node by node."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torch import nn
from upstream_helpers import REQUIRES_TRANSFORMERS, small_workload, trace_upstream

from llm_perf_opt.sources.upstream.source import UpstreamModelSource, resolve_snapshot
from llm_perf_opt.tracer.golden import compare_golden, golden_from_trace, read_golden, write_golden

pytestmark = REQUIRES_TRANSFORMERS


@pytest.fixture(scope="module")
def traced(fixture_source: UpstreamModelSource, fixture_model: nn.Module) -> tuple[Any, Any]:
    return trace_upstream(fixture_source, small_workload(4), model=fixture_model)


def test_trace_covers_every_stage_with_no_unsupported_op(traced: tuple[Any, Any]) -> None:
    result, _ = traced
    assert result.unsupported == ()
    assert result.seq_len == 1 + 693 + 9
    assert result.decode_method == "every-step"  # 3 decode steps: all traced
    for node in (
        "vision/model.sam_model.proj",
        "projector/model.projector.layers",
        "prefill/lm_head",
        "decode/lm_head",
    ):
        assert node in result.nodes
    assert result.node("prefill/model.layers.1.mlp.experts.{0..3}").repetition == "parfor"


def test_counts_follow_the_workload(traced: tuple[Any, Any]) -> None:
    result, _ = traced
    # patch conv 3->32, kernel 64: 2*(3*64*64)*32 FLOPs per output cell; 4 crops x 10x10 + global 16x16 cells
    assert result.node("vision/model.sam_model.proj").cost.matmul_flops == 2 * (3 * 64 * 64) * 32 * (4 * 100 + 256)
    assert result.node("prefill/lm_head").cost.matmul_flops == 2 * 703 * 1280 * 512  # lm_head over all S tokens
    assert result.node("decode/lm_head").cost.matmul_flops == 3 * 2 * 1 * 1280 * 512  # 3 steps, one token each
    assert result.node("prefill/model.layers.1.mlp.experts.{0..3}").calls == 4  # balanced: every expert has tokens
    assert result.node("decode/model.layers.1.mlp.experts.{0..3}").calls == 3 * 2  # k = 2 experts per token


def test_adapters_are_recorded_with_their_uses(traced: tuple[Any, Any], fixture_source: UpstreamModelSource) -> None:
    _, provenance = traced
    uses = {record.kind: record.uses for record in provenance.adapters}
    passes = 1 + 3  # prefill + 3 decode steps
    assert uses == {
        "item-from-workload": 2,  # image present, crops present (prefill only)
        "cuda-noop-on-meta": 1,
        "autocast-skipped-on-meta": 2 * passes,  # one RoPE per layer
        "moe-shape-only-dispatch": 1 * passes,  # one MoE layer
        "kv-cache-preallocated": 2 * passes,  # one append per layer
    }
    assert provenance.code_hashes == fixture_source.snapshot.code_hashes
    assert json.loads(json.dumps(provenance.as_dict()))["source"] == fixture_source.name


def test_golden_round_trip_is_clean(traced: tuple[Any, Any], tmp_path: Path) -> None:
    golden = golden_from_trace(traced[0])
    write_golden(tmp_path / "g.json", golden)
    assert compare_golden(read_golden(tmp_path / "g.json"), golden) == []


def _drift(root: Path, golden: dict[str, Any]) -> list[str]:
    source = resolve_snapshot(f"hf-snapshot:{root}").trust(True)
    result, _ = trace_upstream(source, small_workload(2))
    return compare_golden(golden, golden_from_trace(result))


@pytest.fixture(scope="module")
def short_golden(fixture_source: UpstreamModelSource, fixture_model: nn.Module) -> dict[str, Any]:
    return golden_from_trace(trace_upstream(fixture_source, small_workload(2), model=fixture_model)[0])


def test_renamed_module_is_named(snapshot_copy: Callable[..., Path], short_golden: dict[str, Any]) -> None:
    root = snapshot_copy(
        (
            "modeling_fixture.py",
            "        self.shared_experts = DeepseekV2MLP(",
            "        self.common_experts = DeepseekV2MLP(",
        ),
        (
            "modeling_fixture.py",
            "routed + self.shared_experts(hidden_states)",
            "routed + self.common_experts(hidden_states)",
        ),
    )
    problems = _drift(root, short_golden)
    assert "prefill/model.layers.1.mlp.shared_experts: node removed" in problems
    assert "prefill/model.layers.1.mlp.common_experts: node added" in problems


def test_changed_expert_count_is_named(snapshot_copy: Callable[..., Path], short_golden: dict[str, Any]) -> None:
    problems = _drift(snapshot_copy(("config.json", '"n_routed_experts": 4,', '"n_routed_experts": 5,')), short_golden)
    assert "prefill/model.layers.1.mlp.experts.{0..3}: node removed" in problems
    assert "prefill/model.layers.1.mlp.experts.{0..4}: node added" in problems
    # one more expert: 3*1280*32 params and 1280 gate weights more, bf16
    assert any(
        p.startswith("prefill/model.layers.1.mlp: weight_bytes")
        and p.endswith(
            f"-> {short_golden['nodes']['prefill/model.layers.1.mlp']['weight_bytes'] + 2 * (3 * 1280 * 32 + 1280)}"
        )
        for p in problems
    )
