"""Module-path ids: dotted ``named_modules()`` paths whose grouped indices may hold dots (``a.{1..11}.b``)."""

from __future__ import annotations

__all__ = ["split_module_path"]


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
