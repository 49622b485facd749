"""Report validation: the rules a :class:`DeepSeekOCRAnalyticModel` must keep to be trusted.

Problems (the report is rejected):

* every number is finite and non-negative (workload and model sizes, counts, times, FLOPs, bytes);
* ``share_of_model_time`` and ``share_of_module_flops`` lie in [0, 1.5];
* ``module_id`` values are unique, and so are ``category_id`` values (also within one breakdown),
  and there is at most one metrics row per (module_id, profile_id);
* the module tree has exactly one root (``parent_id`` null), every ``parent_id`` resolves, ``children``
  lists exactly the nodes that name the node as parent, and every node is reachable from the root
  (no cycles);
* ``repetition`` ``for``/``parfor`` carries a ``repetition_count`` >= 1; ``none`` carries null or 1;
* every metrics ``module_id``, ``profile_id`` and ``category_id`` resolves (to a node, to the
  report's workload, to a category).

Warnings (the report is kept): shares above 1 (and at most 1.5).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from attrs import frozen

from llm_perf_opt.contracts.converter import from_json, structure
from llm_perf_opt.contracts.report_model import (
    AnalyticModuleNode,
    DeepSeekOCRAnalyticModel,
    ModuleMetricsSnapshot,
)
from llm_perf_opt.errors import ReportValidationError

__all__ = ["SHARE_LIMIT", "ValidationResult", "check_report", "load_report", "validate_report"]

#: Shares above 1 are tolerated up to this value (rounding, overlapping attribution), and flagged.
SHARE_LIMIT = 1.5

_SHARE_FIELDS = frozenset({"share_of_model_time", "share_of_module_flops"})


@frozen(kw_only=True)
class ValidationResult:
    """Every rule a report breaks (``problems``) and every value that is allowed but suspicious (``warnings``)."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the report breaks no rule (warnings allowed)."""
        return not self.problems


def check_report(model: DeepSeekOCRAnalyticModel) -> ValidationResult:
    """Apply every rule of this module; each problem and warning is one line naming the record and field."""
    problems: list[str] = []
    warnings: list[str] = []
    for where, name, value in _numbers(model):
        _check_number(where, name, value, problems, warnings)
    problems += _duplicates(model)
    problems += _tree_problems(model.modules)
    problems += _reference_problems(model)
    return ValidationResult(problems=tuple(problems), warnings=tuple(warnings))


def validate_report(model: DeepSeekOCRAnalyticModel) -> list[str]:
    """The problems :func:`check_report` finds (empty when the report is valid)."""
    return list(check_report(model).problems)


def load_report(source: str | bytes | Mapping[str, Any]) -> DeepSeekOCRAnalyticModel:
    """Strictly load a report from JSON text or parsed JSON.

    Raises :class:`~llm_perf_opt.errors.ContractError` when it does not fit the contract and
    :class:`~llm_perf_opt.errors.ReportValidationError` (listing every problem) when it breaks a rule.
    """
    if isinstance(source, (str, bytes)):
        model = from_json(source, DeepSeekOCRAnalyticModel)
    else:
        model = structure(source, DeepSeekOCRAnalyticModel)
    problems = validate_report(model)
    if problems:
        raise ReportValidationError(problems)
    return model


def _numeric_fields(obj: Any, where: str) -> Iterator[tuple[str, str, float]]:
    for a in attrs.fields(type(obj)):
        value = getattr(obj, a.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield where, a.name, value


def _numbers(model: DeepSeekOCRAnalyticModel) -> Iterator[tuple[str, str, float]]:
    yield from _numeric_fields(model, "report")
    yield from _numeric_fields(model.model, "model")
    yield from _numeric_fields(model.workload, "workload")
    for node in model.modules:
        yield from _numeric_fields(node, f"module {node.module_id!r}")
    for row in model.module_metrics:
        where = f"metrics of {row.module_id!r}"
        yield from _numeric_fields(row, where)
        for op in row.operator_breakdown:
            yield from _numeric_fields(op, f"{where}, category {op.category_id!r}")


def _check_number(where: str, name: str, value: float, problems: list[str], warnings: list[str]) -> None:
    if not math.isfinite(value) or value < 0:
        problems.append(f"{where}: {name} = {value!r}; expected a finite number >= 0")
    elif name in _SHARE_FIELDS and value > SHARE_LIMIT:
        problems.append(f"{where}: {name} = {value!r}; expected a share in [0, {SHARE_LIMIT}]")
    elif name in _SHARE_FIELDS and value > 1:
        warnings.append(f"{where}: {name} = {value!r} is above 1 (tolerated up to {SHARE_LIMIT})")


def _repeated(values: list[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _duplicates(model: DeepSeekOCRAnalyticModel) -> list[str]:
    problems = [
        f"modules: module_id {m!r} appears more than once" for m in _repeated([n.module_id for n in model.modules])
    ]
    problems += [
        f"operator_categories: category_id {c!r} appears more than once"
        for c in _repeated([c.category_id for c in model.operator_categories])
    ]
    keys = [f"{row.module_id!r} for profile {row.profile_id!r}" for row in model.module_metrics]
    problems += [f"module_metrics: more than one row for {key}" for key in _repeated(keys)]
    for row in model.module_metrics:
        problems += [
            f"metrics of {row.module_id!r}: category_id {c!r} appears more than once in operator_breakdown"
            for c in _repeated([op.category_id for op in row.operator_breakdown])
        ]
    return problems


def _tree_problems(nodes: list[AnalyticModuleNode]) -> list[str]:
    by_id = {node.module_id: node for node in nodes}
    roots = [node.module_id for node in nodes if node.parent_id is None]
    problems: list[str] = []
    if len(roots) != 1:
        found = ", ".join(repr(r) for r in roots) or "none"
        problems.append(f"modules: expected exactly one root (parent_id null), found {found}")
    for node in nodes:
        problems += _node_links(node, by_id)
        problems += _node_repetition(node)
    if len(roots) == 1:
        unreachable = sorted(set(by_id) - _reachable(roots[0], by_id))
        problems += [f"module {m!r}: not reachable from root {roots[0]!r} (a cycle?)" for m in unreachable]
    return problems


def _node_links(node: AnalyticModuleNode, by_id: dict[str, AnalyticModuleNode]) -> list[str]:
    where = f"module {node.module_id!r}"
    problems = [f"{where}: child {c!r} appears more than once in children" for c in _repeated(node.children)]
    if node.parent_id is not None:
        parent = by_id.get(node.parent_id)
        if parent is None:
            problems.append(f"{where}: parent_id {node.parent_id!r} is not a module_id")
        elif node.module_id not in parent.children:
            problems.append(f"{where}: parent {node.parent_id!r} does not list it in children")
    for child_id in node.children:
        child = by_id.get(child_id)
        if child is None:
            problems.append(f"{where}: child {child_id!r} is not a module_id")
        elif child.parent_id != node.module_id:
            problems.append(f"{where}: child {child_id!r} has parent_id {child.parent_id!r}")
    return problems


def _node_repetition(node: AnalyticModuleNode) -> list[str]:
    count = node.repetition_count
    where = f"module {node.module_id!r}"
    if node.repetition != "none" and (count is None or count < 1):
        return [f"{where}: repetition {node.repetition!r} with repetition_count {count!r}; expected an integer >= 1"]
    if node.repetition == "none" and count not in (None, 1):
        return [f"{where}: repetition 'none' with repetition_count {count!r}; expected null or 1"]
    return []


def _reachable(root: str, by_id: dict[str, AnalyticModuleNode]) -> set[str]:
    seen = {root}
    stack = [root]
    while stack:
        for child in by_id[stack.pop()].children:
            if child in by_id and child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _reference_problems(model: DeepSeekOCRAnalyticModel) -> list[str]:
    module_ids = {node.module_id for node in model.modules}
    category_ids = {c.category_id for c in model.operator_categories}
    problems: list[str] = []
    for row in model.module_metrics:
        problems += _row_references(row, module_ids, category_ids, model.workload.profile_id)
    return problems


def _row_references(
    row: ModuleMetricsSnapshot, module_ids: set[str], category_ids: set[str], profile: str
) -> list[str]:
    where = f"metrics of {row.module_id!r}"
    problems = [] if row.module_id in module_ids else [f"{where}: module_id is not a module_id of the tree"]
    if row.profile_id != profile:
        problems.append(f"{where}: profile_id {row.profile_id!r}; expected the workload's {profile!r}")
    problems += [
        f"{where}: category_id {op.category_id!r} is not an operator category"
        for op in row.operator_breakdown
        if op.category_id not in category_ids
    ]
    return problems
