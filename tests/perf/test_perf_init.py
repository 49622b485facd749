"""The public API of ``llm_perf_opt.perf``: ``__all__`` lists every public name and only those."""

from __future__ import annotations

from types import ModuleType

import llm_perf_opt.perf as perf


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(perf).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert public == set(perf.__all__)
    assert all(hasattr(perf, name) for name in perf.__all__)
