"""The dependency rule of docs/architecture.md: torch-free layers never import torch, nobody imports cli/service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llm_perf_opt"
TORCH_FREE = (
    "errors.py",
    "core",
    "config",
    "contracts",
    "workloads",
    "hardware",
    "analytic",
    "perf",
    "store",
    "runtimes",
)
FOUNDATION = ("errors.py", "core", "config", "contracts")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(part: str) -> list[Path]:
    target = SRC / part
    if target.is_file():
        return [target]
    return sorted(target.rglob("*.py")) if target.is_dir() else []


@pytest.mark.parametrize("part", TORCH_FREE)
def test_torch_free_layers_do_not_import_torch(part: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _files(part)
        for name in _imports(path)
        if name == "torch"
        or name.startswith("torch.")
        or name.startswith(("llm_perf_opt.sources", "llm_perf_opt.tracer"))
    ]
    assert offenders == []


@pytest.mark.parametrize("part", FOUNDATION)
def test_foundation_imports_only_foundation(part: str) -> None:
    allowed = ("llm_perf_opt.errors", "llm_perf_opt.core", "llm_perf_opt.config", "llm_perf_opt.contracts")
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _files(part)
        for name in _imports(path)
        if name.startswith("llm_perf_opt") and not name.startswith(allowed)
    ]
    assert offenders == []


def test_nobody_imports_cli_or_service() -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted(SRC.rglob("*.py"))
        if path.parts[len(SRC.parts)] not in {"cli", "service"}
        for name in _imports(path)
        if name.startswith(("llm_perf_opt.cli", "llm_perf_opt.service"))
    ]
    assert offenders == []
