"""Equivalence (issue 7 item 5): the real upstream snapshot and the built-in model trace to the same tree.

Needs a real DeepSeek-OCR v1 snapshot folder (config.json + remote code) in LLM_PERF_OPT_UPSTREAM_SNAPSHOT and an
environment that can import it (transformers 4.46.x, einops, easydict; see docs/upstream.md); skipped otherwise.
"""

from __future__ import annotations

import os

import pytest
from upstream_helpers import trace_upstream

from llm_perf_opt.measure.peak_explain import node_live_sets, peak_differences
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple
from llm_perf_opt.sources.upstream.source import resolve_snapshot
from llm_perf_opt.tracer.equivalence import KNOWN_PEAK_DIFFERENCES, compare_traces
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload, preset_workload

SNAPSHOT = os.environ.get("LLM_PERF_OPT_UPSTREAM_SNAPSHOT")

pytestmark = [
    pytest.mark.upstream,
    pytest.mark.skipif(not SNAPSHOT, reason="set LLM_PERF_OPT_UPSTREAM_SNAPSHOT to a DeepSeek-OCR v1 snapshot folder"),
    pytest.mark.skipif(
        version_tuple(installed_transformers() or "0")[:2] != (4, 46),
        reason="upstream v1 remote code imports transformers 4.46-era classes",
    ),
]

WORKLOADS = {
    "standard": lambda: preset_workload("dsocr-standard-v1"),
    "base-no-crops": lambda: Workload.create(mode="base", page=(1024, 1024), max_new_tokens=16),
    "gundam-4x2": lambda: Workload.create(mode="gundam", page=(1920, 1080), max_new_tokens=3),
}


@pytest.fixture(scope="module")
def upstream() -> tuple[object, object]:
    source = resolve_snapshot(f"hf-snapshot:{SNAPSHOT}").trust(True)
    return source, source.build()


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_upstream_and_builtin_trace_to_the_same_tree(name: str, upstream: tuple[object, object]) -> None:
    source, model = upstream
    workload = WORKLOADS[name]()
    theirs, provenance = trace_upstream(source, workload, model=model)  # type: ignore[arg-type]
    ours = trace_workload(resolve_model_source("deepseek-ocr-v1-base"), workload, attention="eager")
    assert [str(d) for d in compare_traces(ours, theirs)] == []
    assert theirs.unsupported == ours.unsupported == ()
    params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    assert params == 3_336_106_240  # model-facts §2: checkpoint index total_size / 2 bytes
    assert {r.kind for r in provenance.adapters} == {
        "item-from-workload",
        "cuda-noop-on-meta",
        "autocast-skipped-on-meta",
        "moe-shape-only-dispatch",
        "kv-cache-preallocated",
    }


@pytest.mark.parametrize("name", ["base-no-crops", "gundam-4x2"])
def test_peak_activations_differ_only_by_explained_tensors(name: str, upstream: tuple[object, object]) -> None:
    """Same op sequences, so the peaks differ only where one model keeps tensors alive longer: every differing
    node's difference is exactly the difference of the live sets at its peak, made of known ops' tensors."""
    source, model = upstream
    workload = WORKLOADS[name]()
    theirs, _ = trace_upstream(source, workload, model=model)  # type: ignore[arg-type]
    builtin_source = resolve_model_source("deepseek-ocr-v1-base")
    ours_model = builtin_source.build(attn_implementation="eager")
    ours = trace_workload(builtin_source, workload, attention="eager", model=ours_model)
    differing = peak_differences(ours, theirs)
    routing = RoutingModel.balanced()
    their_sets = node_live_sets(model, source.make_driver(model, workload, routing), theirs, differing)  # type: ignore[arg-type]
    our_sets = node_live_sets(ours_model, builtin_source.make_driver(ours_model, workload, routing), ours, differing)
    explained = 0
    for module_id, delta in differing.items():
        if module_id not in their_sets or module_id not in our_sets:
            continue  # a stage or a container whose own ops reach its peak: covered by its children
        extra = our_sets[module_id].difference(their_sets[module_id])
        assert sum(extra.values()) == delta, module_id
        assert set(extra) <= set(KNOWN_PEAK_DIFFERENCES), (module_id, extra)
        explained += 1
    assert explained >= 0.8 * len(differing)
    crops = 3 * 1024 * 1024 * 2  # the all-zero crops tensor (bf16) of a page without crops
    no_crops = workload.num_crops == 0
    assert (theirs.node("vision").peak_activation_bytes - ours.node("vision").peak_activation_bytes) == (
        crops if no_crops else 0
    )
