"""The time model's id helpers: the roots of a cost tree (the tree itself is ``core.tree``)."""

from __future__ import annotations

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.perf.tree import roots_of, stage_of


def test_roots_are_the_nodes_nobody_lists() -> None:
    one = {"linear": Cost(kernels=1)}
    assert roots_of(CostTree.from_categories({"root": one, "decode": one})) == ["root"]
    # no "root": each stage is its own root, sorted
    assert roots_of(CostTree.from_links({"vision": (), "decode": ("decode/x",)}, {"decode/x": one})) == [
        "decode",
        "vision",
    ]
    assert stage_of("decode/x") == "decode"
