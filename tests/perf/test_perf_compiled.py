"""The flattened tree gives the same stage times as the per-node walk."""

from __future__ import annotations

import pytest
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import STAGES, CostTree
from llm_perf_opt.perf import CATEGORIES, CompiledTree, Rates, default_profile, time_tree

costs = st.builds(
    lambda f, v, b, k: Cost(matmul_flops=f, matmul_flops_executed=f, vector_flops=v, bytes_read=b, kernels=k),
    st.integers(0, 10**13),
    st.integers(0, 10**10),
    st.integers(0, 10**10),
    st.integers(0, 10**4),
)
leaf = st.dictionaries(st.sampled_from(CATEGORIES), costs, max_size=3)


def _tree(leaves: dict[str, dict[str, Cost]]) -> CostTree:
    root: dict[str, Cost] = {}
    for c in leaves.values():
        for cat, cost in c.items():
            root[cat] = root.get(cat, Cost()) + cost
    return CostTree.from_links({"root": tuple(leaves)}, {**leaves, "root": root})


@settings(max_examples=50)
@given(leaves=st.dictionaries(st.sampled_from([f"{s}/m.x" for s in STAGES[:4]] + ["other/y"]), leaf, min_size=1))
def test_compiled_stage_seconds_equal_tree_walk(leaves: dict[str, dict[str, Cost]]) -> None:
    tree = _tree(leaves)
    rates = Rates.for_device("a100-80gb", profile=default_profile("eager"))
    walked = time_tree(tree, rates)
    compiled = CompiledTree.from_tree(tree).stage_seconds(rates)
    for stage in STAGES:
        assert compiled[stage] == pytest.approx(walked.stage_s.get(stage, 0.0), rel=1e-12, abs=1e-18)
    assert sum(compiled.values()) == pytest.approx(walked.total_s, rel=1e-12, abs=1e-18)


@settings(max_examples=50)
@given(leaves=st.dictionaries(st.sampled_from([f"{s}/m.x" for s in STAGES[:4]] + ["other/y"]), leaf, min_size=1))
def test_compiled_stage_seconds_equal_tree_walk_with_overlap_and_stage_overheads(
    leaves: dict[str, dict[str, Cost]],
) -> None:
    tree = _tree(leaves)
    profile = evolve(
        default_profile("eager"),
        overlap=True,
        device_kernel_s=2e-6,
        stage_kernel_overhead_s={"vision": 18e-6, "prefill": 12e-6, "decode": 17e-6},
    )
    rates = Rates.for_device("h100-sxm", profile=profile)
    walked = time_tree(tree, rates)
    compiled = CompiledTree.from_tree(tree).stage_seconds(rates)
    for stage in STAGES:
        assert compiled[stage] == pytest.approx(walked.stage_s.get(stage, 0.0), rel=1e-12, abs=1e-18)
    assert sum(compiled.values()) == pytest.approx(walked.total_s, rel=1e-12, abs=1e-18)


def test_unknown_category_is_rejected() -> None:
    tree = CostTree.from_categories({"root": {"magic": Cost(kernels=1)}})
    with pytest.raises(ValueError, match="magic"):
        CompiledTree.from_tree(tree)
