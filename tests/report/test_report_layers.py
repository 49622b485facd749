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
    assert "Source: `docs/model-facts.md` §2.1, §3.7 (documents in the llm-perf-opt repository)." in page
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
    generic = {"d_in", "d_out", "C_in", "C_out", "n", "C"}  # differ per call
    assert set(SYMBOLS) - set(symbol_values(result)) == generic
    values = symbol_values(result)
    assert values["S"] == "283" and values["I_s"] == "1,792" and values["n_w"] == "25 (global view)"  # (70/14)^2


def test_formulas_are_written_as_code(pages: dict[str, str]) -> None:
    for name, page in pages.items():
        formulas = page.split("## Formulas", 1)[1].split("## This workload", 1)[0]
        assert re.search(r"\| `[^`]+`", formulas), name


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_pages() -> dict[str, str]:
    """Pages of a real trace (containers, grouped experts, decode steps): the tiny variant."""
    from llm_perf_opt.analysis.options import AnalysisOptions
    from llm_perf_opt.analysis.pipeline import run_analysis

    options = AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4)
    return render_layer_pages(run_analysis(options))


def _headings(doc: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^#+ (\d+(?:\.\d+)*)\.? ", doc, re.M)}


def test_sources_cite_documents_that_ship_in_the_repository(tiny_pages: dict[str, str]) -> None:
    """Every citation names a file under docs/ and a section it has, not notes outside the repository (issue 17)."""
    docs = {
        name: _headings((ROOT / name).read_text(encoding="utf-8"))
        for name in ("docs/model-facts.md", "docs/conventions.md")
    }
    cited = 0
    for path, text in tiny_pages.items():
        assert "facts " + "sheet" not in text and "DES" + "IGN" not in text, path
        for line in (line for line in text.splitlines() if line.startswith("Source:")):
            current = None
            for token in re.findall(r"`(docs/[\w-]+\.md)`|§(\d+(?:\.\d+)*)", line):
                if token[0]:
                    current = token[0]
                    continue
                assert current in docs, (path, line)
                assert token[1] in docs[current], (path, current, token[1])
                cited += 1
    assert cited > 40
    stale = re.compile("facts " + r"sheet|[^-]\bfacts §|DES" + r"IGN(\.md)? ?§")
    for folder in ("src", "tests", "docs"):
        for file in (ROOT / folder).rglob("*.py" if folder != "docs" else "*.md"):
            assert not stale.search(file.read_text(encoding="utf-8")), file


def test_every_formula_symbol_is_defined_on_its_page(tiny_pages: dict[str, str]) -> None:
    """Each identifier in a formula cell is in the page's symbol table (``T_img`` was used and never defined)."""
    for path, text in tiny_pages.items():
        if "## Formulas" not in text or "None written" in text:
            continue
        formulas = text.split("## Formulas", 1)[1].split("Symbols:", 1)[0]
        defined = (
            set(re.findall(r"^\| `([^`]+)` \|", text.split("Symbols:", 1)[1], re.M)) if "Symbols:" in text else set()
        )
        for cell in re.findall(r"`([^`]+)`", formulas):
            for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", cell):
                if token in SYMBOLS:
                    assert token in defined, (path, token)


def test_repetition_column_shows_the_enclosing_groups(tiny_pages: dict[str, str]) -> None:
    page = tiny_pages["layers/DeepseekV2MLP.md"]
    experts = next(line for line in page.splitlines() if line.startswith("| `prefill/model.layers.{1..2}.mlp.experts"))
    assert "| for x2 · parfor x8 |" in experts
    decode = next(line for line in page.splitlines() if line.startswith("| `decode/model.layers.{1..2}.mlp.experts"))
    assert "| for x3 steps · for x2 · parfor x8 |" in decode


def test_containers_with_nothing_to_say_get_no_page(tiny_pages: dict[str, str]) -> None:
    assert "layers/ModuleList.md" not in tiny_pages and "layers/Sequential.md" not in tiny_pages
    assert "layers/Linear.md" in tiny_pages
