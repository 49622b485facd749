"""Public API: ``__all__`` of the package root and the foundation modules is complete, resolvable and sorted."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import llm_perf_opt
from llm_perf_opt import contracts

FOUNDATION = ("llm_perf_opt.errors", "llm_perf_opt.core", "llm_perf_opt.config", "llm_perf_opt.contracts")


def _modules() -> list[str]:
    names = ["llm_perf_opt"]
    for name in FOUNDATION:
        names.append(name)
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            names += [
                info.name
                for info in pkgutil.iter_modules(module.__path__, prefix=f"{name}.")
                if not info.name.rsplit(".", 1)[-1].startswith("_")
            ]
    return names


def _sort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 ("isort-style") order: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


def _defined_here(module: ModuleType) -> set[str]:
    return {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", _modules())
def test_all_resolves_and_is_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert [n for n in exported if not hasattr(module, n)] == []
    assert len(set(exported)) == len(exported)
    assert exported == sorted(exported, key=_sort_key)


@pytest.mark.parametrize("name", _modules())
def test_all_lists_every_public_class_and_function_defined_in_the_module(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(_defined_here(module) - set(module.__all__)) == []


def test_contracts_re_export_every_public_submodule() -> None:
    name = "llm_perf_opt.contracts"
    for info in pkgutil.iter_modules(contracts.__path__, prefix=f"{name}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        submodule = importlib.import_module(info.name)
        missing = sorted(set(submodule.__all__) - set(contracts.__all__))
        assert missing == [], f"{info.name} exports {missing} that {name} does not"


def test_package_root_re_exports_the_contracts() -> None:
    assert set(llm_perf_opt.__all__) == {*contracts.__all__, "__version__"}
    assert all(getattr(llm_perf_opt, n) is getattr(contracts, n) for n in contracts.__all__)
    assert llm_perf_opt.__version__ == "0.1.0"
