"""The dependency rule of docs/architecture.md, enforced two ways.

* Statically: every ``import`` in ``src`` (module level or inside a function) read with ``ast`` gives the import
  graph.  Each package imports only packages of its own layer or below, never a forbidden sibling (``sources`` and
  ``tracer`` meet only in ``core.driving``), and no module reaches itself again (no circles).
* At run time: each package imported alone in a fresh interpreter loads only packages of its layer or below
  (``sys.modules``), and the torch-free packages leave torch unloaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "llm_perf_opt"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "core", "config", "contracts", "hardware"),
    ("workloads",),
    ("analytic", "perf", "runtimes", "serving", "admission"),
    ("sources", "tracer", "tracecache"),
    ("measure", "analysis"),
    ("report", "store"),
    ("cli", "service"),
)
"""Bottom to top; a package imports only its own layer and the layers below it."""

LAYER_OF: Mapping[str, int] = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

FORBIDDEN: frozenset[tuple[str, str]] = frozenset(
    {
        ("sources", "tracer"),
        ("tracer", "sources"),
        ("analytic", "perf"),
        ("measure", "analysis"),
        ("store", "report"),
        ("report", "store"),
        ("service", "cli"),
    }
)
"""Same-layer pairs that must not import each other (sources provide drivers, the tracer runs them: both import
``core.driving``)."""

TORCH_FREE = (
    "errors",
    "core",
    "config",
    "contracts",
    "hardware",
    "workloads",
    "analytic",
    "perf",
    "runtimes",
    "serving",
    "admission",
    "store",
    "tracecache",
)
"""Packages that never load torch (``analysis``, ``measure``, ``report`` load it only through their torch modules)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _package(module: str) -> str:
    """``llm_perf_opt.<package>`` of a module (``errors`` for ``llm_perf_opt.errors``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _target(name: str) -> str | None:
    """The module of ours an imported dotted name lands in (the longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _imports(module: str) -> Iterator[str]:
    """Every module of ours that ``module`` imports, at module level or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _target(name)
            if target is not None and target != module:
                yield target


GRAPH: dict[str, set[str]] = {module: set(_imports(module)) for module in MODULES}


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in MODULES} - {""}
    missing = sorted(packages - set(LAYER_OF))
    assert missing == [], f"place {missing} in LAYERS here and in docs/architecture.md"


def test_imports_point_down_or_sideways_never_up() -> None:
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if (a := _package(module)) and (b := _package(target)) and a != b
        if LAYER_OF.get(b, 99) > LAYER_OF.get(a, -1) or (a, b) in FORBIDDEN
    )
    assert offenders == []


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_circles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("llm_perf_opt."))))
"""


def _loaded(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize("package", sorted({_package(m) for m in MODULES} - {"", "cli", "service"}))
def test_importing_a_package_loads_only_its_layer_and_below(package: str) -> None:
    loaded = _loaded(f"llm_perf_opt.{package}")
    above = sorted(
        {_package(m) for m in loaded if m != "torch"}
        - {p for p, layer in LAYER_OF.items() if layer <= LAYER_OF[package] and (package, p) not in FORBIDDEN}
    )
    assert above == []
    if package in TORCH_FREE:
        assert "torch" not in loaded


@pytest.mark.parametrize(
    "module",
    [
        "llm_perf_opt.analysis",
        "llm_perf_opt.analysis.options",
        "llm_perf_opt.tracer",
        "llm_perf_opt.tracer.derive",
        "llm_perf_opt.analysis.pinned",
    ],
)
def test_torch_free_entry_points_of_torch_packages(module: str) -> None:
    """The service computes report ids with ``analysis.options`` before any build: torch stays unloaded."""
    assert "torch" not in _loaded(module)


def _nested_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports inside a function or class body (module-level ones, ``if TYPE_CHECKING:`` included, are not)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def test_function_level_imports_are_documented_lazy_loads() -> None:
    """Plain imports everywhere, except a heavy optional dependency loaded on first use: a block of function-level
    imports opens with a ``# lazy: <why>`` line."""
    offenders = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        nested = {node.lineno for node in _nested_imports(ast.parse("\n".join(lines)))}
        for lineno in sorted(nested):
            first = lineno
            while first - 1 in nested:
                first -= 1
            if not lines[first - 2].strip().startswith("# lazy:"):
                offenders.append(f"{module}:{lineno}")
    assert offenders == []
