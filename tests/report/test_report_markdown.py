"""report.md: a snapshot of a fixed small result, determinism, required sections and human-formatted numbers.

Regenerate the snapshot deliberately with ``LLM_PERF_OPT_UPDATE_SNAPSHOTS=1 pytest tests/report``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from attrs import evolve
from report_fixture import small_result

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.report.humanize import fmt_bytes, fmt_bytes_apart
from llm_perf_opt.report.markdown import render_report_md, reproduce_command

SNAPSHOT = Path(__file__).parent / "snapshots" / "report_small.md"
UPDATE = os.environ.get("LLM_PERF_OPT_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(scope="module")
def result() -> AnalysisResult:
    return small_result()


@pytest.fixture(scope="module")
def text(result: AnalysisResult) -> str:
    return render_report_md(result)


def test_matches_the_snapshot(text: str) -> None:
    if UPDATE:
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.read_text(encoding="utf-8") == text, (
        "report.md changed; regenerate with LLM_PERF_OPT_UPDATE_SNAPSHOTS=1"
    )


def test_is_deterministic_and_holds_no_absolute_path(result: AnalysisResult, text: str) -> None:
    assert render_report_md(small_result()) == text
    assert str(Path.cwd()) not in text and "/tmp" not in text and "/home" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_has_every_section_in_order(text: str) -> None:
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Workload",
        "## Device",
        "## Time",
        "## Memory",
        "## Where the time goes: top modules",
        "## Operator categories",
        "## Plots",
        "## Validation: analytic vs traced",
        "## Coverage ledger",
        "## Assumptions",
        "## Layer pages",
    ]
    assert text.startswith("# deepseek-ocr-v1-base · base 1024x1024 · NVIDIA H100 SXM5 80GB\n")


def test_workload_numbers_are_exact(text: str) -> None:
    assert "| prefill length S | 283 = 1 BOS + 273 image + 9 prompt |" in text  # model-facts §3.5
    assert "| new tokens N | 8 (1 from prefill + 7 decode steps) |" in text
    assert "| KV length at the end | 290 tokens (S + N - 1) |" in text  # 283 + 8 - 1


def test_memory_shows_exact_bytes(result: AnalysisResult, text: str) -> None:
    assert "| weights | 6.67 GB | 6,672,212,480 |" in text  # 2 * 3,336,106,240
    kv = 2 * 12 * 10 * 128 * 2 * 290  # 61,440 B per token x 290 tokens
    assert result.memory.kv_cache_bytes == kv
    assert f"| {17.8} MB | {kv:,} | 290 tokens x 1 sequence(s) x 61,440 B per token" in text


def test_stage_times_add_up(result: AnalysisResult, text: str) -> None:
    s = result.stages
    assert s.ttft_s == pytest.approx(s.vision_s + s.projector_s + s.prefill_s)
    assert f"**End to end {s.end_to_end_s * 1e3:.2f} ms**" in text
    assert "| Time per output token (TPOT) |" in text and "| Decode, 7 steps |" in text


def test_embeds_the_svg_plots(text: str) -> None:
    for stem in ("stage_times", "category_shares", "roofline"):
        assert f"](plots/{stem}.svg)" in text
    assert ".png" not in text
    assert "[Block](layers/Block.md)" in text and "[Linear](layers/Linear.md)" in text


def test_coverage_lists_unsupported_ops_and_says_none_when_empty(result: AnalysisResult, text: str) -> None:
    assert "| `aten.nonzero.default` | 3 | `prefill/model.layers.{1..11}` |" in text
    assert "`model.vision_model.embeddings.patch_embedding`" in text
    clean = evolve(result, trace=evolve(result.trace, unsupported=(), uncalled_modules=()))
    clean_text = render_report_md(clean)
    assert "none: no op went uncounted." in clean_text
    assert "none: every module ran." in clean_text


def test_validation_summary_names_the_worst_node(result: AnalysisResult, text: str) -> None:
    assert "- **status: pass** - 18 nodes compared, 18 passed, 0 failed (other counters within 2%" in text
    assert "- worst relative error: 5% on `vision/model.vision_model` (bytes_read)" in text
    assert (
        "| clip-position-interpolation | bytes_read | `vision/model.vision_model` | 1..1.1 | "
        "1.05 on `vision/model.vision_model` | 0 of 1 | bicubic" in text
    )
    failing = dict(result.validation_summary, status="fail", nodes_failed=1, failures={"root": ["kernels: +0.5"]})
    failed = render_report_md(evolve(result, validation_summary=failing))
    assert "| `root` | kernels: +0.5 |" in failed and "**status: fail**" in failed


def test_assumptions_cover_the_conventions(result: AnalysisResult) -> None:
    text = render_report_md(evolve(result, assumptions=()))
    section = text.split("## Assumptions\n", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "2 per multiply-accumulate",
        "Attention kernel: flash",
        "MoE routing: balanced",
        "dense peaks from NVIDIA H100",
        "per-kernel overhead 10.0 us",
        "Decode: affine-fit",
    ):
        assert needle in section
    given = render_report_md(evolve(result, assumptions=("decode: every-step (forced)",)))
    assert "- Decode: every-step (forced)" in given


def test_measured_comparison_is_shown_when_given(result: AnalysisResult) -> None:
    measured = {
        "run_id": "run-1",
        "device": "NVIDIA H100",
        "stages": [{"stage": "prefill", "predicted_ms": 4.19, "measured_ms": 5.0, "ratio": 0.838}],
    }
    text = render_report_md(evolve(result, measured=measured))
    assert "### Predicted vs measured" in text
    assert "Measurement: run id run-1, device NVIDIA H100." in text
    assert "| prefill | 4.19 | 5 | 0.838 |" in text


def test_reproduce_command_names_every_choice(result: AnalysisResult) -> None:
    assert reproduce_command(result) == (
        "llm-perf-opt analyze --model deepseek-ocr-v1-base --workload dsocr-standard-v1 --mode base "
        "--image 1024x1024 --max-new-tokens 8 --device h100-sxm --dtype bf16 --attention flash --routing balanced"
    )


def test_reproduce_command_keeps_allow_mismatch_with_the_measurement(result: AnalysisResult) -> None:
    # a report compared against a mismatched measurement: without --allow-mismatch its own line would be refused
    compared = evolve(result.options, measured="/runs/meas.json")
    assert reproduce_command(evolve(result, options=compared)).endswith("--routing balanced --measured meas.json")
    flagged = evolve(compared, allow_mismatch=True)
    line = reproduce_command(evolve(result, options=flagged))
    assert line.endswith("--routing balanced --measured meas.json --allow-mismatch")


def _tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_every_time_column_has_one_unit_and_one_format(text: str) -> None:
    """No ``0.1837 ms`` beside ``91.8 us`` (issue 17): each time column shares its unit and its decimals."""
    checked = 0
    for table in _tables(text):
        header = table[0]
        for index, name in enumerate(header):
            if "time" not in name or "%" in name:
                continue
            cells = [row[index].strip("*") for row in table[2:] if index < len(row) and row[index]]
            units = {c.rsplit(" ", 1)[-1] for c in cells}
            decimals = {len(c.split(" ")[0].split(".")[1]) if "." in c else 0 for c in cells}
            assert len(units) == 1 and len(decimals) == 1, (name, cells)
            checked += 1
    assert checked >= 3


def test_one_token_reads_as_one_token_and_no_decode_rate() -> None:
    one = render_report_md(small_result(max_new_tokens=1))
    assert "generating 1 token:" in one and "1 tokens" not in one
    assert "no decode step" in one
    assert "| 0.0 |" not in one.split("### Throughput", 1)[1].split("\n\n", 2)[1]


def test_a_configuration_that_does_not_fit_headlines_no_throughput(result: AnalysisResult) -> None:
    text = render_report_md(evolve(result, capacity=evolve(result.capacity, fits=False)))
    title = text.split("\n\n")[2]
    assert "pages/day" not in title and "does not fit the device memory" in title
    table = text.split("### Throughput", 1)[1].split("\n\n", 2)[1]
    assert table.startswith("None: this configuration does not fit") and "|" not in table


def test_a_peak_just_over_the_device_reads_apart_from_it(result: AnalysisResult) -> None:
    """analyze --batch 115 said 'Memory 80.0 GB at the peak: does **not** fit the 80.0 GB device' (22.1 MB over)."""
    total = result.memory.total_bytes
    device = total - total // 3600  # 80.0221 GB over 80.0 GB: 0.028% over
    over = evolve(result, capacity=evolve(result.capacity, capacity_bytes=device, fits=False))
    assert fmt_bytes(total) == fmt_bytes(device)  # what the sentence showed before
    capacity = fmt_bytes_apart(total, device)
    assert capacity[0] != capacity[1]
    text = render_report_md(over)
    assert f"Memory {capacity[0]} at the peak: does **not** fit the {capacity[1]} device (" in text


@pytest.mark.parametrize(
    ("max_batch", "says"), [(114, "(largest batch that fits: 114)."), (0, "(not even one page fits).")]
)
def test_a_batch_that_does_not_fit_says_what_does(result: AnalysisResult, max_batch: int, says: str) -> None:
    over = evolve(result, capacity=evolve(result.capacity, fits=False, max_batch=max_batch))
    assert f"does **not** fit the 80.0 GB device {says}" in render_report_md(over)
