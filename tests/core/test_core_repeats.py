"""The bridge for repeated calls inside a module: the plain call outside a trace, the tracer's hook inside one."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from llm_perf_opt.core.repeats import repeatable, repeating_calls


def _add(a: int, b: int) -> int:
    return a + b


def test_repeatable_outside_a_hook_is_the_plain_call() -> None:
    assert repeatable(_add, 2, 3, key="k") == 5


def test_inside_repeating_calls_the_hook_gets_the_call_its_arguments_and_key_and_answers_for_it() -> None:
    seen: list[tuple[Callable[..., Any], tuple[Any, ...], Hashable]] = []

    def hook(call: Callable[..., Any], args: tuple[Any, ...], key: Hashable) -> Any:
        seen.append((call, args, key))
        return -1

    with repeating_calls(hook):
        assert repeatable(_add, 2, 3, key=("expert", 4)) == -1
    assert seen == [(_add, (2, 3), ("expert", 4))]
    assert repeatable(_add, 2, 3, key="k") == 5  # the hook is gone after the block
