"""Module-path splitting: dots inside grouped indices do not split."""

from __future__ import annotations

from llm_perf_opt.analytic.tree import components
from llm_perf_opt.core.paths import split_module_path
from llm_perf_opt.perf.tree import id_components


def test_dots_inside_braces_stay_in_one_part() -> None:
    assert split_module_path("model.layers.{1..11}.mlp") == ("model", "layers", "{1..11}", "mlp")
    assert split_module_path("model.blocks.{0,1,3}.attn") == ("model", "blocks", "{0,1,3}", "attn")
    assert split_module_path("lm_head") == ("lm_head",)


def test_the_analytic_and_time_model_views_agree() -> None:
    path = "model.sam_model.blocks.{0..11}.attn.qkv"
    assert components(path) == split_module_path(path)
    assert id_components(path) == list(split_module_path(path))
