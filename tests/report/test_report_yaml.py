"""report.yaml: parses back, SI keys with exact integers, deterministic."""

from __future__ import annotations

import yaml
from attrs import evolve
from report_fixture import small_result

from llm_perf_opt.analysis.assemble import rounded
from llm_perf_opt.report.yaml_out import render_report_yaml, report_mapping


def test_round_trips_and_is_deterministic() -> None:
    result = small_result()
    text = render_report_yaml(result)
    assert render_report_yaml(small_result()) == text
    data = yaml.safe_load(text)
    assert list(data) == [
        "report",
        "workload",
        "device",
        "time",
        "memory",
        "top_modules",
        "categories",
        "validation",
        "coverage",
        "assumptions",
        "modules",
    ]
    assert data["report"]["report_id"] == result.report_id
    assert data["workload"]["seq_len"] == 283 and data["workload"]["final_kv_len"] == 290
    assert data["memory"]["weights_bytes"] == 6_672_212_480
    assert data["memory"]["kv_cache_bytes"] == 61_440 * 290
    assert data["coverage"]["unsupported_ops"] == [
        {"op": "aten.nonzero.default", "count": 3, "module_paths": ["prefill/model.layers.{1..11}"]}
    ]
    lm_head = next(m for m in data["modules"] if m["module_id"] == "prefill/lm_head")
    assert lm_head["matmul_flops"] == 2 * 283 * 1280 * 129280  # exact integer, not rounded
    assert len(data["modules"]) == len(result.trace.nodes)
    assert data["time"]["stages_ms"]["end_to_end_ms"] == rounded(result.stages.end_to_end_s * 1e3)


def test_fast_emitter_writes_the_same_bytes_as_the_python_one() -> None:
    """report.yaml goes through libyaml's emitter when PyYAML has it; its text must equal the pure-Python
    emitter's byte for byte (a report must not depend on how PyYAML was built)."""
    result = small_result()
    python_text = yaml.safe_dump(report_mapping(result), sort_keys=False, allow_unicode=True, width=120)
    assert render_report_yaml(result) == python_text


def test_no_rates_for_a_configuration_that_does_not_fit() -> None:
    # report.md says "No throughput" for such a batch; report.yaml must not hand a planner pages/day for it.
    result = small_result()
    fitting = report_mapping(result)["time"]["throughput"]
    assert fitting["pages_per_day"] > 0 and fitting["tokens_per_s"] > 0
    refused = report_mapping(evolve(result, capacity=evolve(result.capacity, fits=False)))["time"]["throughput"]
    assert refused == {key: (value if key == "batch_size" else None) for key, value in fitting.items()}


def test_one_token_has_no_tpot_and_no_decode_rate() -> None:
    # max_new_tokens 1: prefill makes the only token, so TPOT and the decode rate do not exist (null, not 0.0).
    time = report_mapping(small_result(max_new_tokens=1))["time"]
    assert time["decode_steps"] == 0
    assert time["stages_ms"]["tpot_ms"] is None and time["throughput"]["decode_tokens_per_s"] is None
    assert time["stages_ms"]["ttft_ms"] > 0 and time["throughput"]["tokens_per_s"] > 0
