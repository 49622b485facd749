"""Source fingerprints of methods: what an adapter checks before it touches upstream code.

A fingerprint is the sha256 of the method's syntax tree (``ast.dump`` without positions), so comments, blank lines
and formatting do not change it and any change to the code does.  The pattern helpers count specific call shapes
(``.item()``, ``.cuda()``, ``torch.autocast(...)``) in a method, for adapters that act on one spot of a method.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from llm_perf_opt.errors import TraceError

__all__ = [
    "MethodSource",
    "autocast_calls",
    "method_call_count",
    "method_source",
    "parameter_names",
]


class MethodSource:
    """A method's parsed source: its function node and its fingerprint."""

    def __init__(self, owner: type, name: str, text: str) -> None:
        self.owner = owner
        self.name = name
        tree = ast.parse(textwrap.dedent(text))
        node = tree.body[0]
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            raise TraceError(f"{owner.__name__}.{name} is not a plain function definition")
        self.node: ast.FunctionDef | ast.AsyncFunctionDef = node
        self.sha256 = hashlib.sha256(ast.dump(node, include_attributes=False).encode("utf-8")).hexdigest()

    def calls(self) -> list[ast.Call]:
        return [n for n in ast.walk(self.node) if isinstance(n, ast.Call)]


def method_source(owner: type, name: str) -> MethodSource:
    """Parse ``owner.name`` (decorators unwrapped); a method without readable source is a TraceError."""
    func: Callable[..., Any] = inspect.unwrap(getattr(owner, name))
    try:
        text = inspect.getsource(func)
    except (OSError, TypeError) as exc:
        raise TraceError(f"cannot read the source of {owner.__name__}.{name}: {exc}") from None
    return MethodSource(owner, name, text)


def parameter_names(owner: type, name: str) -> tuple[str, ...]:
    """Positional parameter names of ``owner.name`` (``self`` included)."""
    func = inspect.unwrap(getattr(owner, name))
    return tuple(inspect.signature(func).parameters)


def method_call_count(source: MethodSource, method: str) -> list[ast.Call]:
    """Calls ``<expr>.method(...)`` in the method body."""
    return [c for c in source.calls() if isinstance(c.func, ast.Attribute) and c.func.attr == method]


def is_torch_call(node: ast.expr, name: str) -> bool:
    """``torch.<name>(...)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
    )


def autocast_calls(source: MethodSource) -> list[ast.Call]:
    """``torch.autocast(...)`` calls in the method body."""
    return [c for c in source.calls() if is_torch_call(c, "autocast")]


def keyword_is_false(call: ast.Call, keyword: str) -> bool:
    """The call passes ``keyword=False`` literally."""
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords)
