"""The result classes are torch-free and their queries work on a hand-built result."""

from __future__ import annotations

import ast
from pathlib import Path

from llm_perf_opt.core import Cost
from llm_perf_opt.tracer.result import TracedNode, TraceResult

RESULT = Path(__file__).resolve().parents[2] / "src" / "llm_perf_opt" / "tracer" / "result.py"


def test_result_module_does_not_import_torch() -> None:
    tree = ast.parse(RESULT.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [n for n in names if n == "torch" or n.startswith(("torch.", "llm_perf_opt.tracer."))]


def _node(module_id: str, parent: str | None, children: tuple[str, ...], cats: dict[str, Cost]) -> TracedNode:
    return TracedNode(
        module_id=module_id,
        name=module_id,
        path="",
        qualified_class_name="x.Y",
        stage="other" if module_id == "root" else "prefill",
        parent_id=parent,
        children=children,
        repetition="none",
        repetition_count=None,
        constructor_params={},
        calls=1,
        cost=Cost.total(cats.values()),
        by_category=cats,
        weight_bytes=0,
        peak_activation_bytes=0,
        kv_cache_bytes=0,
    )


def test_queries() -> None:
    cats = {"linear": Cost(matmul_flops=90, matmul_flops_executed=90, kernels=1), "other": Cost(vector_flops=10)}
    nodes = {
        "root": _node("root", None, ("prefill",), cats),
        "prefill": _node("prefill", "root", ("prefill/a",), cats),
        "prefill/a": _node("prefill/a", "prefill", (), cats),
    }
    result = TraceResult(
        model="m",
        workload="w",
        seq_len=3,
        max_new_tokens=1,
        attention="flash",
        routing="balanced",
        decode_method="none",
        decode_note="",
        nodes=nodes,
        op_ledger={},
        unsupported=(),
        uncalled_modules=(),
        categories={},
    )
    assert [n.module_id for n in result.walk()] == ["root", "prefill", "prefill/a"]
    assert result.other_flops_share() == 10 / 100
    assert result.category_flops("prefill/a") == {"linear": 90, "other": 10}
    assert result.root.category_calls == {"linear": 1, "other": 0}
