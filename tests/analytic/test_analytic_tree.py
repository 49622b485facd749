"""The analytic tree is the project's one cost tree: lazily built nodes that agree with the counters they come from."""

from __future__ import annotations

from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.analytic.tree import TreeBuilder
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.workloads import Workload

TINY = DeepseekOCRConfig.tiny()
WORK = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=3, config=TINY)


def test_nodes_read_the_counters_and_extras() -> None:
    tree = analytic_costs(TINY, WORK)
    assert isinstance(tree, CostTree)
    for nid, node in tree.items():
        assert node.module_id == nid and node.children == tree.children[nid]
        assert node.cost == Cost.total(tree.by_category(nid).values())
        assert node.by_category == tree.by_category(nid)
        assert (node.calls, node.weight_bytes, node.kv_cache_bytes, node.peak_activation_bytes) == (
            tree.calls[nid],
            tree.weight_bytes[nid],
            tree.kv_cache_bytes[nid],
            tree.peak_activation_bytes[nid],
        )
        assert all(tree[kid].parent_id == nid for kid in node.children)
    assert tree["prefill/model.layers.0.mlp"].name == "mlp" and tree["prefill/model.layers.0"].name == "layers.0"
    assert tree["prefill/model.layers.0.mlp"].path == "model.layers.0.mlp" and tree["root"].stage == "other"
    assert "prefill" in tree and "prefill/nowhere" not in tree
    assert tree.stage_costs() == {nid: tree[nid].cost for nid in ("decode", "prefill", "projector", "vision")}


def test_rescale_equals_the_generic_tree_rescale() -> None:
    tree = analytic_costs(TINY, WORK)
    fast = tree.at_element_bytes(counted=2, target=1)
    slow = CostTree(dict(tree.items())).at_element_bytes(counted=2, target=1)
    assert dict(fast.items()) == dict(slow.items())


def test_merge_adds_a_pass_times_over() -> None:
    one = TreeBuilder()
    one.add("prefill/a", "linear", Cost(matmul_flops=3, kernels=1))
    one.node("prefill/a", calls=1)
    one.add_fused("prefill/a", 5)
    one.set_peak("prefill/a", 7)
    tb = TreeBuilder()
    tb.merge(one, 4)
    tree = tb.build(root_weight_bytes=0)
    assert tree["prefill/a"].cost == Cost(matmul_flops=12, kernels=4) == tree["root"].cost
    assert (tree.calls["prefill/a"], tree.fused_bytes["prefill"], tree.peak_activation_bytes["root"]) == (4, 20, 7)
