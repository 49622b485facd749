"""The analytic model against the meta-device trace of the built-in model, node by node.

Matmul FLOPs must be equal on every node; in fact every counter is (vector FLOPs, bytes read/written, weight and
KV bytes, kernels), as are calls, weight bytes, KV bytes and the per-category split, so this checks all of them.
"""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.analysis.validation import validation_payload, validation_summary
from llm_perf_opt.analytic import AnalyticTree, analytic_costs
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload

TINY = "deepseek-ocr-v1-tiny"
BASE = "deepseek-ocr-v1-base"


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, Any]:
    source = resolve_model_source(TINY)
    return {
        "flash": source.build(attn_implementation="sdpa"),
        "eager": source.build(attn_implementation="eager"),
    }


def _compare(trace: Any, tree: AnalyticTree) -> list[str]:
    problems = []
    if set(trace.nodes) != set(tree):
        only_traced, only_analytic = sorted(set(trace.nodes) - set(tree)), sorted(set(tree) - set(trace.nodes))
        problems.append(f"ids: only traced {only_traced}, only analytic {only_analytic}")
    for nid, node in trace.nodes.items():
        if nid not in tree:
            continue
        if node.cost != tree[nid].cost:
            problems.append(f"{nid}: traced {node.cost} analytic {tree[nid].cost}")
        extras = (
            (node.calls, tree.calls[nid], "calls"),
            (node.weight_bytes, tree.weight_bytes[nid], "weight_bytes"),
            (node.kv_cache_bytes, tree.kv_cache_bytes[nid], "kv_cache_bytes"),
        )
        problems += [f"{nid}: {name} traced {t} analytic {a}" for t, a, name in extras if t != a]
        traced_cats = {cat: cost for cat, cost in node.by_category.items() if any(cost.as_dict().values())}
        if traced_cats != tree.by_category(nid):
            problems.append(f"{nid}: categories traced {sorted(traced_cats)} analytic {sorted(tree.by_category(nid))}")
    return problems


CASES = [
    # (mode, page, max_new_tokens, batch, attention, routing)
    ("tiny", (800, 800), 3, 1, "flash", "balanced"),
    ("small", (800, 800), 2, 1, "eager", "balanced"),
    ("base", (1024, 1024), 6, 1, "flash", "balanced"),  # 5 decode steps: affine fit
    ("large", (1280, 1280), 2, 1, "eager", "balanced"),
    ("gundam", (1024, 1024), 5, 2, "flash", "balanced"),  # 2x2 crops, batch 2
    ("gundam", (1024, 1024), 3, 2, "eager", "skewed:2"),
    ("gundam", (600, 500), 3, 1, "eager", "balanced"),  # no-crop branch
    ("gundam", (3000, 1000), 2, 1, "flash", "skewed:8"),  # 3x1
    ("gundam", (600, 2000), 2, 1, "eager", "balanced"),  # 1x3
    ("gundam", (2480, 3508), 2, 1, "flash", "balanced"),  # A4: 2x3
    ("gundam-m", (2000, 1000), 2, 1, "flash", "balanced"),
]


@pytest.mark.parametrize(("mode", "page", "N", "B", "attention", "routing"), CASES)
def test_tiny_model_every_node_equal(
    tiny_models: dict[str, Any], mode: str, page: tuple[int, int], N: int, B: int, attention: str, routing: str
) -> None:
    source = resolve_model_source(TINY)
    workload = Workload.create(mode=mode, page=page, max_new_tokens=N, batch_size=B, config=source.config)
    route = RoutingModel.parse(routing)
    trace = trace_workload(source, workload, attention=attention, routing=route, model=tiny_models[attention])
    tree = analytic_costs(source.config, workload, attention=attention, routing=route)
    assert _compare(trace, tree) == []
    summary = validation_summary(validation_payload(trace.tree, tree))
    assert summary["status"] == "pass"
    assert summary["matmul_flops_exact_nodes"] == len(trace.nodes)


def test_every_step_decode_equals_the_closed_form(tiny_models: dict[str, Any]) -> None:
    source = resolve_model_source(TINY)
    workload = Workload.create(mode="tiny", page=(800, 800), max_new_tokens=7, config=source.config)
    trace = trace_workload(source, workload, attention="eager", decode="every-step", model=tiny_models["eager"])
    assert trace.decode_method == "every-step"
    assert _compare(trace, analytic_costs(source.config, workload, attention="eager")) == []


@pytest.mark.slow
def test_base_model_gundam_every_node_equal() -> None:
    source = resolve_model_source(BASE)
    workload = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=5)  # S = 703, 4 decode steps
    trace = trace_workload(source, workload, attention="flash")
    tree = analytic_costs(source.config, workload, attention="flash")
    assert _compare(trace, tree) == []
    assert tree["root"].cost.matmul_flops == trace.root.cost.matmul_flops
    assert trace.root.weight_bytes == tree.weight_bytes["root"] == 6_672_212_480


@pytest.mark.parametrize(("attention", "B", "N"), [("flash", 1, 4), ("eager", 2, 3)])
def test_text_only_request_every_node_equal(tiny_models: dict[str, Any], attention: str, B: int, N: int) -> None:
    """No image: no vision or projector node on either side, S = 1 BOS + prompt, the eager mask in prefill/model."""
    source = resolve_model_source(TINY)
    workload = Workload.create(
        mode="gundam", page=(1024, 1024), prompt_tokens=12, max_new_tokens=N, batch_size=B, config=source.config
    )
    text = evolve(workload, text_only=True)
    assert (text.image_tokens, text.seq_len) == (0, 13)
    trace = trace_workload(source, text, attention=attention, model=tiny_models[attention])
    tree = analytic_costs(source.config, text, attention=attention)
    assert _compare(trace, tree) == []
    assert not [nid for nid in trace.nodes if nid.startswith(("vision", "projector"))]
    assert validation_summary(validation_payload(trace.tree, tree))["status"] == "pass"
