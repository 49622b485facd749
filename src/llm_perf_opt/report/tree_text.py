"""The grouped module tree of a trace as readable text (and as JSON records ``diff`` can compare), torch-free.

One line per node, indented by depth::

    blocks.{0,1,3,4,6,7,9,10}  Block  for x8  params 56.7M  (window_size=14)

Columns: display name, class, repetition (``for``/``parfor`` with its count), parameters held (unique, from the
trace's weight bytes at the traced dtype), and the constructor parameters that set the cost.  Stage nodes show
their stage; every node below a stage belongs to it.
"""

from __future__ import annotations

from typing import Any

from llm_perf_opt.errors import UserError
from llm_perf_opt.tracer.result import TracedNode, TraceResult

__all__ = ["tree_records", "tree_text"]

_PARAM_LIMIT = 8


def _params(weight_bytes: int, bytes_per_param: int) -> int:
    return weight_bytes // bytes_per_param


def _count(n: int) -> str:
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3g}{suffix}"
    return str(n)


_QUIET: frozenset[tuple[str, str]] = frozenset(
    {
        ("padding_mode", "zeros"),
        ("output_padding", "[0,0]"),
        ("transposed", "False"),
        ("dilation", "[1,1]"),
        ("groups", "1"),
        ("max_norm", "None"),
        ("norm_type", "2.0"),
        ("scale_grad_by_freq", "False"),
        ("sparse", "False"),
        ("padding", "[0,0]"),
    }
)
"""(parameter, value) pairs at torch's defaults that the text view leaves out (the JSON view keeps them)."""


def _ctor(node: TracedNode) -> str:
    items = [(k, v) for k, v in sorted(node.constructor_params.items()) if (k, _value(v)) not in _QUIET]
    shown = ", ".join(f"{k}={_value(v)}" for k, v in items[:_PARAM_LIMIT])
    more = f", +{len(items) - _PARAM_LIMIT}" if len(items) > _PARAM_LIMIT else ""
    return f"({shown}{more})" if items else ""


def _value(v: object) -> str:
    if isinstance(v, list | tuple):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


def _line(node: TracedNode, depth: int, bytes_per_param: int) -> str:
    cls = node.qualified_class_name.rsplit(".", 1)[-1]
    name = node.name if "/" in node.module_id else f"[{node.module_id}]"
    parts = [f"{'  ' * depth}{name}", cls]
    if node.repetition != "none":
        parts.append(f"{node.repetition} x{node.repetition_count}")
    if node.weight_bytes:
        parts.append(f"params {_count(_params(node.weight_bytes, bytes_per_param))}")
    ctor = _ctor(node)
    if ctor:
        parts.append(ctor)
    return "  ".join(parts)


def tree_text(
    trace: TraceResult, *, stage: str | None = None, max_depth: int | None = None, bytes_per_param: int = 2
) -> str:
    """The tree from ``root`` (or one ``stage``), ``max_depth`` levels below it (None: all)."""
    start = stage if stage is not None else "root"
    if start not in trace.nodes:
        stages = list(trace.nodes["root"].children)
        raise UserError(f"stage {start!r} has no nodes in this trace; stages present: {', '.join(stages)}")
    lines = [f"{trace.model} · {trace.workload} · {len(trace.nodes)} nodes"]

    def visit(nid: str, depth: int) -> None:
        node = trace.nodes[nid]
        lines.append(_line(node, depth, bytes_per_param))
        if max_depth is not None and depth >= max_depth:
            return
        for child in node.children:
            visit(child, depth + 1)

    visit(start, 0)
    return "\n".join(lines) + "\n"


def tree_records(trace: TraceResult, *, bytes_per_param: int = 2) -> list[dict[str, Any]]:
    """One record per node (tree order): what ``llm-perf-opt diff`` compares for two grouped trees."""
    return [
        {
            "module_id": n.module_id,
            "class": n.qualified_class_name,
            "stage": n.stage,
            "repetition": n.repetition,
            "repetition_count": n.repetition_count,
            "constructor_params": {k: list(v) if isinstance(v, tuple) else v for k, v in n.constructor_params.items()},
            "params": _params(n.weight_bytes, bytes_per_param),
            "calls": n.calls,
        }
        for n in trace.walk()
    ]
