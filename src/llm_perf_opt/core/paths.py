"""Module-path ids: dotted ``named_modules()`` paths whose grouped indices may hold dots (``a.{1..11}.b``)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["index_label", "split_module_path"]


def split_module_path(path: str) -> tuple[str, ...]:
    """Split a module path on dots outside braces: ``a.{1..11}.b`` -> ``(a, {1..11}, b)``."""
    if "{" not in path:
        return tuple(path.split("."))
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(path):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "." and depth == 0:
            parts.append(path[start:i])
            start = i + 1
    parts.append(path[start:])
    return tuple(parts)


def index_label(indices: Iterable[int]) -> str:
    """A group's index set as node ids spell it: ``{a..b}`` for a contiguous run, else ``{a,b,c}``; one index as
    itself (the tracer's grouping and the analytic composers both name nodes with it)."""
    idx = sorted(indices)
    if len(idx) == 1:
        return str(idx[0])
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{{{idx[0]}..{idx[-1]}}}"
    return "{" + ",".join(str(i) for i in idx) + "}"
