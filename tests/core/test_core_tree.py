"""The one cost tree: ids -> parents, exclusive costs, the walks, the byte rescale."""

from __future__ import annotations

import pytest

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree, exclusive_by_category, id_components, parent_candidates, stage_of
from llm_perf_opt.perf.tree import roots_of


def test_id_components_keep_braced_groups_whole() -> None:
    assert id_components("model.layers.{1..11}.mlp.experts.{0..63}.down_proj") == [
        "model",
        "layers",
        "{1..11}",
        "mlp",
        "experts",
        "{0..63}",
        "down_proj",
    ]
    assert id_components("model.sam_model.blocks.{0,1,3}.attn") == ["model", "sam_model", "blocks", "{0,1,3}", "attn"]


def test_parent_candidates_nearest_first() -> None:
    assert parent_candidates("prefill/model.layers.{1..11}.mlp") == [
        "prefill/model.layers.{1..11}",
        "prefill/model.layers",
        "prefill/model",
        "prefill",
        "root",
    ]
    assert parent_candidates("decode") == ["root"]
    assert parent_candidates("root") == []


def test_stage_of() -> None:
    assert stage_of("vision/model.sam_model") == "vision"
    assert stage_of("decode") == "decode"
    assert stage_of("root") == "other"


def test_from_categories_skips_absent_ancestors() -> None:
    one = {"linear": Cost(kernels=1)}
    two = {"linear": Cost(kernels=2)}
    tree = CostTree.from_categories(
        {
            "root": two,
            "prefill": two,
            "prefill/model.layers.{1..11}.mlp": one,  # "prefill/model.layers.{1..11}" and "prefill/model" absent
            "prefill/lm_head": one,
        }
    )
    assert tree["root"].children == ("prefill",)
    assert tree["prefill"].children == ("prefill/lm_head", "prefill/model.layers.{1..11}.mlp")
    assert tree["prefill/lm_head"].parent_id == "prefill" and tree["prefill"].stage == "prefill"
    assert tree["prefill"].cost == Cost(kernels=2)
    assert roots_of(tree) == tree.roots() == ["root"]
    assert tree.exclusive_by_category()["prefill"] == {}
    assert tree.stage_costs() == {"prefill": Cost(kernels=2)}
    assert [node.module_id for node in tree.walk()] == [
        "root",
        "prefill",
        "prefill/lm_head",
        "prefill/model.layers.{1..11}.mlp",
    ]


def test_exclusive_costs_subtract_the_children() -> None:
    tree = CostTree.from_links(
        {"root": ("vision",)},
        {
            "root": {"conv2d": Cost(matmul_flops=10, bytes_read=4)},
            "vision": {"conv2d": Cost(matmul_flops=6, bytes_read=4)},
        },
    )
    own = exclusive_by_category(tree)
    assert own["root"] == {"conv2d": Cost(matmul_flops=4)}  # 10 - 6 FLOPs, 4 - 4 bytes
    assert own["vision"] == {"conv2d": Cost(matmul_flops=6, bytes_read=4)}
    over = CostTree.from_links(
        {"root": ("vision",)}, {"root": {"conv2d": Cost(kernels=1)}, "vision": {"conv2d": Cost(kernels=2)}}
    )
    with pytest.raises(ValueError, match=r"children's kernels \(2\) exceeds the node's \(1\)"):
        over.exclusive_by_category()


def test_missing_child_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in the tree"):
        CostTree.from_links({"root": ("ghost",)}, {"root": {}}).exclusive_by_category()


def test_node_names_close_ids_and_rescale_floors_every_byte_count() -> None:
    tree = CostTree.from_categories({"root": {"linear": Cost(bytes_read=5, matmul_flops=7, kernels=1)}})
    with pytest.raises(KeyError, match="no node 'vision/x'"):
        tree.node("vision/x")
    half = tree.at_element_bytes(counted=2, target=1)
    assert half["root"].cost == Cost(bytes_read=2, matmul_flops=7, kernels=1)  # floor(5 / 2)
    assert half["root"].by_category == {"linear": Cost(bytes_read=2, matmul_flops=7, kernels=1)}
    assert tree.at_element_bytes(counted=2, target=2) is tree
