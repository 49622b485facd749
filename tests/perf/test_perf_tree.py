"""The cost-tree input protocol: ids -> parents, traced-node adaptation, exclusive costs."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from attrs import frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.perf import CostNode, exclusive_by_category, tree_from_ids, tree_from_nodes
from llm_perf_opt.perf.tree import id_components, parent_candidates, roots_of, stage_of


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


def test_tree_from_ids_skips_absent_ancestors() -> None:
    one = {"linear": Cost(kernels=1)}
    two = {"linear": Cost(kernels=2)}
    tree = tree_from_ids(
        {
            "root": two,
            "prefill": two,
            "prefill/model.layers.{1..11}.mlp": one,  # "prefill/model.layers.{1..11}" and "prefill/model" absent
            "prefill/lm_head": one,
        }
    )
    assert tree["root"].children == ("prefill",)
    assert tree["prefill"].children == ("prefill/lm_head", "prefill/model.layers.{1..11}.mlp")
    assert roots_of(tree) == ["root"]
    assert exclusive_by_category(tree)["prefill"] == {}


@frozen
class _Traced:
    children: tuple[str, ...]
    by_category: Mapping[str, Cost]
    module_id: str = ""


def test_tree_from_nodes_reads_children_and_by_category() -> None:
    nodes = {
        "root": _Traced(("vision",), {"conv2d": Cost(matmul_flops=10, bytes_read=4)}),
        "vision": _Traced((), {"conv2d": Cost(matmul_flops=6, bytes_read=4)}),
    }
    tree = tree_from_nodes(nodes)
    assert tree["root"] == CostNode(children=("vision",), by_category={"conv2d": Cost(matmul_flops=10, bytes_read=4)})
    own = exclusive_by_category(tree)
    assert own["root"] == {"conv2d": Cost(matmul_flops=4)}  # 10 - 6 FLOPs, 4 - 4 bytes
    assert own["vision"] == {"conv2d": Cost(matmul_flops=6, bytes_read=4)}


def test_missing_child_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in the tree"):
        exclusive_by_category({"root": CostNode(children=("ghost",))})


def test_tree_from_nodes_accepts_an_iterable_of_nodes_with_ids() -> None:
    nodes = [_Traced(("vision",), {}, "root"), _Traced((), {}, "vision")]
    assert tree_from_nodes(nodes) == {"root": CostNode(children=("vision",)), "vision": CostNode()}
    with pytest.raises(TypeError, match="module_id"):
        tree_from_nodes([object()])  # type: ignore[list-item]
