"""The measure modules the report pipeline and the validation page import must not pull in torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "llm_perf_opt"
TORCH_FREE = [
    "measure/__init__.py",
    "measure/record.py",
    "measure/compare.py",
    "measure/validation.py",
    "measure/validation_md.py",
    "measure/memory_md.py",
    "perf/memory.py",
    "perf/calibrate.py",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("relative", TORCH_FREE)
def test_module_is_torch_free(relative: str) -> None:
    bad = sorted(
        name
        for name in _imports(SRC / relative)
        if name.split(".")[0] == "torch"
        or name.startswith(("llm_perf_opt.sources", "llm_perf_opt.tracer", "llm_perf_opt.measure.harness"))
        or name.startswith(("llm_perf_opt.measure.clock", "llm_perf_opt.measure.environment"))
        or name.startswith("llm_perf_opt.measure.predict")
    )
    assert bad == []
