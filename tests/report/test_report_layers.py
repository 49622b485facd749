"""layers/<Class>.md: one page per analysed class, formulas with symbols and values, this workload's numbers."""

from __future__ import annotations

import re

import pytest
from attrs import evolve
from report_fixture import small_result

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.core import Cost
from llm_perf_opt.report.layer_docs import LAYER_DOCS, SYMBOLS
from llm_perf_opt.report.layers import layer_classes, layer_summary, render_layer_pages, symbol_values


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return small_result()


@pytest.fixture(scope="module")
def pages(result: AnalysisResult) -> dict[str, str]:
    return render_layer_pages(result)


def test_one_page_per_class_in_tree_order(result: AnalysisResult, pages: dict[str, str]) -> None:
    classes = [
        "ImageEncoderViT",
        "Block",
        "VitModel",
        "MlpProjector",
        "Linear",
        "DeepseekV2DecoderLayer",
        "DeepseekV2MLP",
    ]
    assert layer_classes(result) == classes
    assert list(pages) == [f"layers/{c}.md" for c in classes]
    assert render_layer_pages(small_result()) == pages  # deterministic


def test_block_page_has_config_formulas_symbols_source_and_numbers(
    result: AnalysisResult, pages: dict[str, str]
) -> None:
    page = pages["layers/Block.md"]
    assert page.startswith("# Block\n")
    assert "## What it is in DeepSeek-OCR" in page and "windowed {0,1,3,4,6,7,9,10}" in page
    assert "`dim=768, num_heads=12, window_size=14`" in page and "`dim=768, num_heads=12, window_size=0`" in page
    assert "`2 * n_v * g^2 * 2 * C_s * M_s`" in page
    assert "| `g` | SAM token-grid side of a view: R / 16 | 64 (global view) |" in page  # 1024 / 16
    assert "| `M_s` | SAM MLP hidden width (4 x C_s) | 3,072 |" in page
    assert "Source: facts sheet §2.1, §3.7." in page
    blocks = [n for n in result.trace.nodes.values() if n.qualified_class_name.endswith(".Block")]
    matmul = sum(n.cost.matmul_flops for n in blocks)
    assert f"matmul FLOPs {matmul:,} " in page
    assert "`vision/model.sam_model.blocks.{2,5,8,11}` | for x4 | 4 |" in page
    assert "[back to the report](../report.md)" in page


def test_linear_totals_are_the_sum_of_its_outermost_nodes(result: AnalysisResult) -> None:
    linear = [n for n in result.trace.nodes.values() if n.qualified_class_name.endswith(".Linear")]
    assert len(linear) == 3  # projector.layers, prefill/lm_head, decode/lm_head
    summary = layer_summary(result, "Linear")
    assert summary.nodes == 3 and summary.cost == Cost.total(n.cost for n in linear)
    assert summary.calls == 1 + 1 + 7  # decode lm_head runs once per decode step
    assert summary.cost.matmul_flops == 2 * 256 * 2048 * 1280 + 2 * 283 * 1280 * 129280 + 7 * 2 * 1280 * 129280


def test_an_undescribed_class_says_so(result: AnalysisResult) -> None:
    node = result.trace.nodes["projector/model.projector"]
    renamed = evolve(node, qualified_class_name="some.pkg.FancyProjector")
    trace = evolve(result.trace, nodes={**result.trace.nodes, node.module_id: renamed})
    page = render_layer_pages(evolve(result, trace=trace))["layers/FancyProjector.md"]
    assert "No description is written for this class" in page
    assert "None written for this class" in page
    assert "`projector/model.projector`" in page


def test_every_symbol_is_defined_and_valued(result: AnalysisResult) -> None:
    used = {s for doc in LAYER_DOCS.values() for s in doc.symbols}
    assert used <= set(SYMBOLS)
    generic = {"d_in", "d_out", "C_in", "C_out", "k_h, k_w", "H_out, W_out", "n", "C"}  # differ per call
    assert set(SYMBOLS) - set(symbol_values(result)) == generic
    values = symbol_values(result)
    assert values["S"] == "283" and values["I_s"] == "1,792" and values["n_w"] == "25 (global view)"  # (70/14)^2


def test_formulas_are_written_as_code(pages: dict[str, str]) -> None:
    for name, page in pages.items():
        formulas = page.split("## Formulas", 1)[1].split("## This workload", 1)[0]
        assert re.search(r"\| `[^`]+`", formulas), name
