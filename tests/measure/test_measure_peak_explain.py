"""Explaining traced peaks: every node's live set, re-run under LiveBytes, reaches exactly the traced peak."""

from __future__ import annotations

from attrs import evolve

from llm_perf_opt.measure.peak_explain import member_paths, node_live_sets, peak_differences
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload


def test_member_paths_expand_ranges_and_lists() -> None:
    assert member_paths("a.{1..3}.b") == ["a.1.b", "a.2.b", "a.3.b"]
    assert member_paths("x.{0,2}.y.{4..5}") == ["x.0.y.4", "x.0.y.5", "x.2.y.4", "x.2.y.5"]
    assert member_paths("plain") == ["plain"]


def test_every_traced_node_peak_is_the_live_set_the_ops_leave() -> None:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=3, config=source.config)
    model = source.build(attn_implementation="eager")
    trace = trace_workload(source, workload, attention="eager", model=model)
    driver = source.make_driver(model, workload, RoutingModel.balanced())
    modules = [m for m, n in trace.nodes.items() if n.path]
    sets = node_live_sets(model, driver, trace, modules)
    assert len(sets) > 0.9 * len(modules)  # the rest: containers whose peak is reached by their own ops
    for module_id, live in sets.items():
        assert live.peak_bytes == trace.node(module_id).peak_activation_bytes, module_id
        assert sum(live.by_op.values()) == live.peak_bytes
    assert peak_differences(trace, trace) == {}
    bigger = evolve(trace, nodes={**trace.nodes, "vision": evolve(trace.node("vision"), peak_activation_bytes=1)})
    assert peak_differences(trace, bigger) == {"vision": 1 - trace.node("vision").peak_activation_bytes}
