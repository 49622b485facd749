"""Report validation: a valid report passes, and every rule fails on its own broken example."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from llm_perf_opt.contracts import (
    AnalyticModuleNode,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRModelSpec,
    ModuleMetricsSnapshot,
    OCRWorkloadProfile,
    OperatorCategory,
    OperatorMetrics,
    Repetition,
    check_report,
    load_report,
    to_json,
    unstructure,
    validate_report,
)
from llm_perf_opt.errors import ContractError, ReportValidationError

PROFILE = "dsocr-standard-v1"


def _node(module_id: str, parent: str | None, children: list[str], **extra: Any) -> AnalyticModuleNode:
    stage: Any = "other" if module_id == "root" else module_id.split("/")[0]
    fields: dict[str, Any] = {"repetition": "none", **extra}
    return AnalyticModuleNode(
        module_id=module_id, name=module_id, qualified_class_name="M", stage=stage, parent_id=parent,
        children=children, **fields,
    )  # fmt: skip


def _row(module_id: str, *, share: float = 0.5, flops_share: float = 1.0, **extra: Any) -> ModuleMetricsSnapshot:
    values: dict[str, Any] = {
        "profile_id": PROFILE, "calls": 1, "total_time_ms": 1.0, "total_flops_tflops": 0.5, "total_io_tb": 0.001,
        "memory_weights_gb": 0.1, "memory_activations_gb": 0.2, "memory_kvcache_gb": 0.0,
        "share_of_model_time": share, **extra,
    }  # fmt: skip
    breakdown = [
        OperatorMetrics(category_id="linear", calls=2, flops_tflops=0.5, io_tb=0.001, share_of_module_flops=flops_share)
    ]
    return ModuleMetricsSnapshot(module_id=module_id, operator_breakdown=breakdown, **values)


def valid_report() -> DeepSeekOCRAnalyticModel:
    layers = "prefill/model.layers.{0..1}"
    modules = [
        _node("root", None, ["vision", "prefill"]),
        _node("vision", "root", []),
        _node("prefill", "root", [layers]),
        _node(layers, "prefill", [], repetition="for", repetition_count=2, constructor_params={"hidden": 1280}),
    ]
    return DeepSeekOCRAnalyticModel(
        report_id="r1",
        model=DeepSeekOCRModelSpec(
            model_id="deepseek-ai/DeepSeek-OCR", model_variant="deepseek-ocr-v1-base", hidden_size=1280,
            intermediate_size=6848, num_layers=12, num_attention_heads=10, vision_backbone="sam_vit_b", uses_moe=True,
        ),
        workload=OCRWorkloadProfile(
            profile_id=PROFILE, description="one page", seq_len=283, base_size=1024, image_size=1024,
            crop_mode=False, max_new_tokens=100, doc_kind="text_heavy", num_pages=1,
        ),
        modules=modules,
        operator_categories=[
            OperatorCategory(category_id="linear", display_name="Linear", description="GEMMs", match_classes=["mm"])
        ],
        module_metrics=[_row("root", share=1.0), _row("vision", share=0.4), _row("prefill", share=0.6), _row(layers)],
    )  # fmt: skip


def _with_modules(report: DeepSeekOCRAnalyticModel, *nodes: AnalyticModuleNode) -> DeepSeekOCRAnalyticModel:
    replaced = {node.module_id: node for node in nodes}
    return attrs.evolve(report, modules=[replaced.get(node.module_id, node) for node in report.modules])


def _with_row(report: DeepSeekOCRAnalyticModel, index: int, **changes: Any) -> DeepSeekOCRAnalyticModel:
    rows = list(report.module_metrics)
    rows[index] = attrs.evolve(rows[index], **changes)
    return attrs.evolve(report, module_metrics=rows)


def test_the_valid_report_has_no_problems_and_no_warnings() -> None:
    result = check_report(valid_report())
    assert result.ok
    assert (result.problems, result.warnings) == ((), ())
    assert validate_report(valid_report()) == []


@pytest.mark.parametrize(
    ("where", "name", "value"),
    [("metrics", "total_time_ms", -1.0), ("metrics", "total_io_tb", float("nan")), ("metrics", "calls", -2),
     ("metrics", "memory_kvcache_gb", float("inf"))],
)  # fmt: skip
def test_metrics_numbers_must_be_finite_and_non_negative(where: str, name: str, value: float) -> None:
    report = _with_row(valid_report(), 1, **{name: value})
    assert validate_report(report) == [f"metrics of 'vision': {name} = {value!r}; expected a finite number >= 0"]


def test_numbers_of_workload_model_nodes_and_operators_are_checked_too() -> None:
    report = valid_report()
    report = attrs.evolve(
        report,
        workload=attrs.evolve(report.workload, seq_len=-1),
        model=attrs.evolve(report.model, num_layers=-12),
        predicted_total_time_ms=-3.0,
    )
    op = attrs.evolve(report.module_metrics[0].operator_breakdown[0], flops_tflops=-0.5)
    report = _with_row(report, 0, operator_breakdown=[op])
    layers = report.modules[3]
    report = _with_modules(report, attrs.evolve(layers, repetition_count=-2))
    assert validate_report(report) == [
        "report: predicted_total_time_ms = -3.0; expected a finite number >= 0",
        "model: num_layers = -12; expected a finite number >= 0",
        "workload: seq_len = -1; expected a finite number >= 0",
        "module 'prefill/model.layers.{0..1}': repetition_count = -2; expected a finite number >= 0",
        "metrics of 'root', category 'linear': flops_tflops = -0.5; expected a finite number >= 0",
        "module 'prefill/model.layers.{0..1}': repetition 'for' with repetition_count -2; expected an integer >= 1",
    ]


@pytest.mark.parametrize(("share", "is_problem"), [(1.6, True), (1.5, False), (1.2, False)])
def test_share_of_model_time_above_one_is_flagged_and_above_limit_rejected(share: float, is_problem: bool) -> None:
    result = check_report(_with_row(valid_report(), 2, share_of_model_time=share))
    if is_problem:
        assert result.problems == (
            f"metrics of 'prefill': share_of_model_time = {share}; expected a share in [0, 1.5]",
        )
        assert result.warnings == ()
    else:
        assert result.problems == ()
        assert result.warnings == (
            f"metrics of 'prefill': share_of_model_time = {share} is above 1 (tolerated up to 1.5)",
        )


def test_share_of_module_flops_follows_the_same_limits() -> None:
    report = valid_report()
    rows = [_row("root", share=1.0, flops_share=1.51), _row("vision", share=0.4, flops_share=1.01)]
    result = check_report(attrs.evolve(report, module_metrics=rows + list(report.module_metrics[2:])))
    assert result.problems == (
        "metrics of 'root', category 'linear': share_of_module_flops = 1.51; expected a share in [0, 1.5]",
    )
    assert result.warnings == (
        "metrics of 'vision', category 'linear': share_of_module_flops = 1.01 is above 1 (tolerated up to 1.5)",
    )


def test_negative_share_is_a_problem() -> None:
    problems = validate_report(_with_row(valid_report(), 1, share_of_model_time=-0.1))
    assert problems == ["metrics of 'vision': share_of_model_time = -0.1; expected a finite number >= 0"]


def test_duplicate_module_ids_are_rejected() -> None:
    report = valid_report()
    report = attrs.evolve(report, modules=[*report.modules, _node("vision", "root", [])])
    assert "modules: module_id 'vision' appears more than once" in validate_report(report)


def test_duplicate_category_ids_are_rejected() -> None:
    report = valid_report()
    report = attrs.evolve(report, operator_categories=report.operator_categories * 2)
    assert validate_report(report) == ["operator_categories: category_id 'linear' appears more than once"]


def test_duplicate_metrics_rows_and_breakdown_categories_are_rejected() -> None:
    report = valid_report()
    twice = _with_row(report, 1, operator_breakdown=report.module_metrics[1].operator_breakdown * 2)
    assert validate_report(twice) == [
        "metrics of 'vision': category_id 'linear' appears more than once in operator_breakdown"
    ]
    doubled = attrs.evolve(report, module_metrics=[*report.module_metrics, report.module_metrics[1]])
    assert validate_report(doubled) == [
        "module_metrics: more than one row for 'vision' for profile 'dsocr-standard-v1'"
    ]


def test_a_tree_without_a_root_is_rejected() -> None:
    report = valid_report()
    report = _with_modules(report, attrs.evolve(report.modules[0], parent_id="prefill"))
    problems = validate_report(report)
    assert problems[0] == "modules: expected exactly one root (parent_id null), found none"
    assert "module 'root': parent 'prefill' does not list it in children" in problems


def test_two_roots_are_rejected() -> None:
    report = valid_report()
    report = attrs.evolve(report, modules=[*report.modules, _node("decode", None, [])])
    assert validate_report(report) == ["modules: expected exactly one root (parent_id null), found 'root', 'decode'"]


def test_an_empty_tree_has_no_root() -> None:
    report = attrs.evolve(valid_report(), modules=[], module_metrics=[])
    assert validate_report(report) == ["modules: expected exactly one root (parent_id null), found none"]


def test_a_cycle_detached_from_the_root_is_rejected() -> None:
    report = valid_report()
    loop = [_node("decode/a", "decode/b", ["decode/b"]), _node("decode/b", "decode/a", ["decode/a"])]
    problems = validate_report(attrs.evolve(report, modules=[*report.modules, *loop]))
    assert problems == [
        "module 'decode/a': not reachable from root 'root' (a cycle?)",
        "module 'decode/b': not reachable from root 'root' (a cycle?)",
    ]


def test_children_must_agree_with_parent_ids() -> None:
    report = valid_report()
    vision = report.modules[1]
    orphan_child = _with_modules(report, attrs.evolve(vision, children=["prefill"]))
    assert validate_report(orphan_child) == ["module 'vision': child 'prefill' has parent_id 'root'"]
    unlisted = _with_modules(report, attrs.evolve(report.modules[0], children=["prefill"]))
    assert validate_report(unlisted) == [
        "module 'vision': parent 'root' does not list it in children",
        "module 'vision': not reachable from root 'root' (a cycle?)",
    ]
    repeated = _with_modules(report, attrs.evolve(report.modules[0], children=["vision", "prefill", "vision"]))
    assert validate_report(repeated) == ["module 'root': child 'vision' appears more than once in children"]


def test_unknown_parent_and_child_ids_are_rejected() -> None:
    report = valid_report()
    report = _with_modules(report, attrs.evolve(report.modules[1], parent_id="nowhere", children=["vision/ghost"]))
    problems = validate_report(report)
    assert "module 'vision': parent_id 'nowhere' is not a module_id" in problems
    assert "module 'vision': child 'vision/ghost' is not a module_id" in problems


@pytest.mark.parametrize(
    ("repetition", "count", "problem"),
    [
        ("for", None, "repetition 'for' with repetition_count None; expected an integer >= 1"),
        ("parfor", 0, "repetition 'parfor' with repetition_count 0; expected an integer >= 1"),
        ("none", 4, "repetition 'none' with repetition_count 4; expected null or 1"),
    ],
)
def test_repetition_and_count_must_agree(repetition: Repetition, count: int | None, problem: str) -> None:
    report = valid_report()
    node = attrs.evolve(report.modules[3], repetition=repetition, repetition_count=count)
    assert validate_report(_with_modules(report, node)) == [f"module 'prefill/model.layers.{{0..1}}': {problem}"]


def test_metrics_references_must_resolve() -> None:
    report = valid_report()
    assert validate_report(_with_row(report, 1, module_id="vision/ghost")) == [
        "metrics of 'vision/ghost': module_id is not a module_id of the tree"
    ]
    assert validate_report(_with_row(report, 1, profile_id="other-profile")) == [
        "metrics of 'vision': profile_id 'other-profile'; expected the workload's 'dsocr-standard-v1'"
    ]
    op = attrs.evolve(report.module_metrics[1].operator_breakdown[0], category_id="conv2d")
    assert validate_report(_with_row(report, 1, operator_breakdown=[op])) == [
        "metrics of 'vision': category_id 'conv2d' is not an operator category"
    ]


def test_load_report_accepts_text_bytes_and_dicts() -> None:
    report = valid_report()
    text = to_json(report)
    assert load_report(text) == report
    assert load_report(text.encode()) == report
    assert load_report(unstructure(report)) == report


def test_load_report_raises_every_problem() -> None:
    broken = _with_row(valid_report(), 1, total_time_ms=-1.0, profile_id="x")
    with pytest.raises(ReportValidationError) as info:
        load_report(to_json(broken))
    assert info.value.problems == [
        "metrics of 'vision': total_time_ms = -1.0; expected a finite number >= 0",
        "metrics of 'vision': profile_id 'x'; expected the workload's 'dsocr-standard-v1'",
    ]
    assert (
        str(info.value)
        == "invalid report: metrics of 'vision': total_time_ms = -1.0; expected a finite number >= 0 (and 1 more)"
    )


def test_load_report_refuses_payloads_that_do_not_fit_the_contract() -> None:
    data = unstructure(valid_report())
    data["modules"][0]["repetition"] = "loop"
    with pytest.raises(ContractError, match=r"expected one of 'none', 'for', 'parfor' @ \$\.modules\[0\]\.repetition$"):
        load_report(data)
