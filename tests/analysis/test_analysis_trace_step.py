"""The analysis's trace step through the trace cache: a warm analyze imports no torch and writes the same report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from llm_perf_opt.analysis import trace_step
from llm_perf_opt.analysis.model_source import resolve_source_workload, trusted_source
from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import run_analysis
from llm_perf_opt.analysis.trace_step import analysis_key_parts
from llm_perf_opt.cli import cli, progress
from llm_perf_opt.tracecache import CACHE_DIR_ENV, TraceCache, trace_key
from llm_perf_opt.tracecache.store import basis_parts
from llm_perf_opt.workloads import RoutingModel

TINY = ["--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--max-new-tokens", "4"]
BALANCED = RoutingModel.balanced()
WARM_SCRIPT = """
import sys
from llm_perf_opt.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("torch imported:", "torch" in sys.modules)
"""


def _entries() -> int:
    return TraceCache().info().entries


def _analyze_without_torch(*argv: str) -> None:
    """Run the command line in a fresh process on this test's cache: it succeeds and never imports torch."""
    run = subprocess.run(
        [sys.executable, "-c", WARM_SCRIPT, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, CACHE_DIR_ENV: os.environ[CACHE_DIR_ENV]},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "torch imported: False" in run.stdout


def _every_step_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress lines on a non-terminal stderr, for every step however short (the steps name the cache's answer)."""
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    monkeypatch.setattr(progress, "SLOW_STEP_S", -1.0)


def test_a_warm_analyze_imports_no_torch_and_writes_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _every_step_on_stderr(monkeypatch)
    cold = CliRunner().invoke(cli, ["analyze", *TINY, "--out", str(tmp_path / "cold"), "--quiet"])
    assert cold.exit_code == 0, cold.output
    assert _entries() == 1
    args = ["analyze", *TINY, "--device", "a100-80gb", "--out", str(tmp_path / "warm")]
    other_device = CliRunner().invoke(cli, args)
    assert other_device.exit_code == 0, other_device.output
    assert "from the trace cache" in other_device.stderr
    assert _entries() == 1  # the device is not part of the key
    _analyze_without_torch("analyze", *TINY, "--out", str(tmp_path / "warm"), "--quiet")
    for name in ("model.json", "summary.json", "validation.json", "report.yaml"):
        assert (tmp_path / "warm" / name).read_bytes() == (tmp_path / "cold" / name).read_bytes(), name


def test_no_cache_neither_reads_nor_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _every_step_on_stderr(monkeypatch)
    result = CliRunner().invoke(cli, ["analyze", *TINY, "--no-cache", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert _entries() == 0
    assert "traced (" in result.stderr


def test_a_corrupted_entry_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    options = AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=2, batch_size=2)
    first = run_analysis(options)
    (path,) = [p for p in TraceCache().folder.glob("*.json") if p.name.count(".") == 1]  # the trace, not its notes
    path.write_text(path.read_text()[:1000])
    with pytest.warns(UserWarning, match="unreadable"):
        again = run_analysis(options)
    assert again.trace == first.trace and again.summary == first.summary
    assert TraceCache().load(path.stem) is not None  # stored again, complete


def test_the_key_follows_shapes_attention_and_routing_not_the_preset_name() -> None:
    source = trusted_source("deepseek-ocr-v1-base", False)

    def key(routing: RoutingModel = BALANCED, attention: str = "flash", **over: object) -> str:
        workload = resolve_source_workload(AnalysisOptions(**over), source)  # type: ignore[arg-type]
        return trace_key(analysis_key_parts(source, workload, attention=attention, routing=routing))

    base = key()
    assert key(batch_size=2) != base
    assert key(max_new_tokens=64) != base
    assert key(page=(1240, 1754)) != base
    assert key(attention="eager") != base
    assert key(routing=RoutingModel.skewed(1.2)) != base
    assert key(max_new_tokens=512) == base  # the preset's own value: the same shapes
    tiny = trusted_source("deepseek-ocr-v1-tiny", False)
    workload = resolve_source_workload(AnalysisOptions(), tiny)
    assert trace_key(analysis_key_parts(tiny, workload, attention="flash", routing=RoutingModel.balanced())) != base


def test_cache_info_and_clear_commands() -> None:
    assert "entries: 0" in CliRunner().invoke(cli, ["cache", "info"]).output
    run_analysis(AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=2))
    info = CliRunner().invoke(cli, ["cache", "info"])
    assert info.exit_code == 0 and "entries: 1 trace (traced or derived), 0 decode bases," in info.output
    assert os.environ[CACHE_DIR_ENV] in info.output
    cleared = CliRunner().invoke(cli, ["cache", "clear"])
    assert cleared.exit_code == 0 and cleared.output.startswith(
        "removed 1 trace, 0 decode bases and 0 batch bases from "
    )
    assert _entries() == 0


_NOTE = re.compile(
    r"derived from the cached decode basis; every counter affine, integrated over \d+ steps?"
    r"|traced steps [0-9, ]+ of \d+; every counter affine, integrated"
)


def test_another_output_length_is_derived_from_the_cached_basis_without_torch(tmp_path: Path) -> None:
    tiny = ["analyze", "--model", "deepseek-ocr-v1-tiny", "--workload", "dsocr-tiny-v1", "--quiet"]
    cold = CliRunner().invoke(cli, [*tiny, "--max-new-tokens", "16", "--out", str(tmp_path / "cold")])
    assert cold.exit_code == 0, cold.output
    assert (_entries(), TraceCache().info().bases) == (1, 1)  # the trace and its decode basis
    _analyze_without_torch(*tiny, "--max-new-tokens", "300", "--out", str(tmp_path / "derived"))
    assert _entries() == 2  # the derived trace is stored under its own key
    args = [*tiny, "--max-new-tokens", "300", "--no-cache", "--out", str(tmp_path / "traced")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    for name in ("model.json", "summary.json", "validation.json", "report.yaml"):
        ours, theirs = ((tmp_path / d / name).read_text() for d in ("derived", "traced"))
        assert "derived from the cached decode basis" in ours or name == "validation.json"
        assert _NOTE.sub("<decode note>", ours) == _NOTE.sub("<decode note>", theirs), name


def test_a_trace_for_a_waiting_command_keeps_a_basis_of_its_own_output_length_only() -> None:
    """The background process's trace of a batch a command waits for leaves out the context's last decode step: the
    same trace, with a decode basis covering its own output length instead of every length the context allows."""
    source = trusted_source("deepseek-ocr-v1-tiny", False)
    workload = resolve_source_workload(
        AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=16), source
    )
    shapes: dict[str, Any] = {"attention": "flash", "routing": BALANCED}
    parts = analysis_key_parts(source, workload, **shapes)
    short = trace_step.traced(source, workload, cache=TraceCache(), whole_context=False, **shapes)[0]
    assert TraceCache().load_basis(parts)[1].covers == 15  # type: ignore[index]  # (its 15 decode steps)
    whole = trace_step.traced(source, workload, cache=None, **shapes)[0]
    assert short == whole
    TraceCache().clear()
    trace_step.traced(source, workload, cache=TraceCache(), **shapes)
    limit = trace_step.context_new_tokens(source.name, workload.seq_len)
    assert TraceCache().load_basis(parts)[1].covers == limit - 1  # type: ignore[index]


def test_a_corrupted_basis_is_dropped_with_a_warning_and_traced_again(tmp_path: Path) -> None:
    options = AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=8)
    run_analysis(options)
    source = trusted_source("deepseek-ocr-v1-tiny", False)
    workload = resolve_source_workload(options, source)
    parts = analysis_key_parts(source, workload, attention="flash", routing=BALANCED)
    path = TraceCache().basis_path(trace_key(basis_parts(parts)))
    path.write_text(path.read_text()[:500])
    longer = attrs.evolve(options, max_new_tokens=20)
    with pytest.warns(UserWarning, match="unreadable"):
        again = run_analysis(longer)
    assert again.trace.decode_note.startswith("traced steps")
    assert TraceCache().load_basis(parts) is not None  # the new trace left a complete basis


def test_the_basis_key_leaves_out_the_output_length_only() -> None:
    source = trusted_source("deepseek-ocr-v1-base", False)

    def key(**over: object) -> str:
        workload = resolve_source_workload(AnalysisOptions(**over), source)  # type: ignore[arg-type]
        return trace_key(basis_parts(analysis_key_parts(source, workload, attention="flash", routing=BALANCED)))

    assert key(max_new_tokens=64) == key()
    assert key(batch_size=2) != key() and key(page=(1240, 1754)) != key()


def test_a_page_of_the_same_tile_grid_is_answered_from_the_cache(tmp_path: Path) -> None:
    # both pages cut into 2 x 3 crops of 640 px: the same traced shapes, so one trace; the report names each page
    gundam = ["analyze", "--model", "deepseek-ocr-v1-tiny", "--mode", "gundam", "--max-new-tokens", "4", "--quiet"]
    first = CliRunner().invoke(cli, [*gundam, "--image", "1240x1754", "--out", str(tmp_path / "a4")])
    assert first.exit_code == 0, first.output
    args = [*gundam, "--image", "1250x1760"]
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "cached")])
    assert again.exit_code == 0 and _entries() == 1
    assert CliRunner().invoke(cli, [*args, "--no-cache", "--out", str(tmp_path / "traced")]).exit_code == 0
    for name in ("model.json", "summary.json", "validation.json", "report.yaml", "report.md"):
        cached, traced = ((tmp_path / d / name).read_bytes() for d in ("cached", "traced"))
        assert cached == traced, name
    assert b"1250x1760" in (tmp_path / "cached" / "report.md").read_bytes()
    other_grid = CliRunner().invoke(cli, [*gundam, "--image", "1754x1240", "--out", str(tmp_path / "landscape")])
    assert other_grid.exit_code == 0 and _entries() == 2  # 3 x 2 crops: other shapes


def test_a_cache_folder_that_is_a_file_is_one_warning_and_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "afile"))
    (tmp_path / "afile").write_text("not a folder")
    with pytest.warns(UserWarning, match=r"afile is not a folder; not cached") as seen:
        run_analysis(AnalysisOptions(model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=2))
    assert len(seen) == 1
    info = CliRunner().invoke(cli, ["cache", "info"])
    assert info.exit_code == 0 and "it is not a folder: nothing is cached" in info.output
    clear = CliRunner().invoke(cli, ["cache", "clear"])
    assert clear.exit_code == 0 and clear.output == (
        f"trace cache {tmp_path / 'afile'} is not a folder: nothing to clear (set {CACHE_DIR_ENV} to a folder)\n"
    )
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_a_trace_whose_steps_bend_leaves_the_wider_basis_in_place() -> None:
    # eager attention: the score matrix becomes the attention's peak after the first steps, so a trace of 300 tokens
    # has steps 1, 150, 299 off one line (no basis from it) and the basis of the 16-token trace (15 steps) stays
    eager = {"model": "deepseek-ocr-v1-base", "workload_id": "dsocr-tiny-v1", "attention": "eager"}
    first = run_analysis(AnalysisOptions(**eager, max_new_tokens=16))  # type: ignore[arg-type]
    assert first.trace.decode_note.startswith("traced steps 1, 8, 15 of 15")
    longer = run_analysis(AnalysisOptions(**eager, max_new_tokens=300))  # type: ignore[arg-type]
    assert longer.trace.decode_note.startswith("traced steps 1, 150, 299 of 299")
    shorter = run_analysis(AnalysisOptions(**eager, max_new_tokens=10))  # type: ignore[arg-type]
    assert shorter.trace.decode_note.startswith("derived from the cached decode basis")
    assert TraceCache().info().bases == 1


_BATCH_NOTE = re.compile(r"batch: extrapolated \([^)]*\)[^|\"'\n]*|Batch: extrapolated .*")


def test_a_second_batch_keeps_a_batch_basis_and_later_batches_are_derived_without_torch(tmp_path: Path) -> None:
    # the tiny model under skewed routing
    tiny = [*TINY, "--max-new-tokens", "16", "--routing", "skewed:1.2", "--quiet"]  # 15 steps: a fitted decode
    for batch in ("1", "9"):  # the first batch leaves a note, the second builds the basis
        run = CliRunner().invoke(cli, ["analyze", *tiny, "--batch", batch, "--out", str(tmp_path / batch)])
        assert run.exit_code == 0, run.output
        expected = (0, 1) if batch == "1" else (1, 0)
        assert (TraceCache().info().batch_bases, TraceCache().info().batch_marks) == expected
    _analyze_without_torch("analyze", *tiny, "--batch", "300", "--out", str(tmp_path / "derived"))
    args = ["analyze", *tiny, "--batch", "300", "--no-cache", "--out", str(tmp_path / "traced")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    for name in ("model.json", "summary.json", "validation.json", "report.yaml", "report.md"):
        ours, theirs = ((tmp_path / d / name).read_text() for d in ("derived", "traced"))
        assert "language derived at batch 300" in ours or name == "validation.json"
        assert _BATCH_NOTE.sub("<batch note>", ours) == _BATCH_NOTE.sub("<batch note>", theirs), name
    info = CliRunner().invoke(cli, ["cache", "info"])
    assert "1 batch basis" in info.output
    # another batch and another output length at once: the batch, then the output length from its decode basis
    both = ["--batch", "77", "--max-new-tokens", "40"]
    _analyze_without_torch("analyze", *tiny, *both, "--out", str(tmp_path / "both"))
    assert CliRunner().invoke(cli, ["analyze", *tiny, *both, "--no-cache", "--out", str(tmp_path / "both-traced")])
    for name in ("model.json", "summary.json", "report.yaml"):
        ours, theirs = ((tmp_path / d / name).read_text() for d in ("both", "both-traced"))
        ours, theirs = (_NOTE.sub("<decode note>", _BATCH_NOTE.sub("<batch note>", t)) for t in (ours, theirs))
        assert ours == theirs, name


def test_a_corrupted_batch_basis_is_dropped_with_a_warning_and_traced_again(tmp_path: Path) -> None:
    options = AnalysisOptions(
        model="deepseek-ocr-v1-tiny",
        workload_id="dsocr-tiny-v1",
        max_new_tokens=4,
        routing="skewed:1.2",
        batch_size=1,
    )
    run_analysis(options)
    run_analysis(attrs.evolve(options, batch_size=9))
    (path,) = TraceCache().folder.glob("*.batch.json")
    path.write_text(path.read_text()[:1000])
    with pytest.warns(UserWarning, match="unreadable"):
        again = run_analysis(attrs.evolve(options, batch_size=300))
    assert again.trace.batch_note.endswith("language traced at batch 300")


def test_shapes_whose_batch_basis_was_refused_are_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # a basis that does not reproduce its own batches is not kept (here: every one is dropped), and a later batch of
    # the same shapes does not try again (an attempt traces six more language passes: seconds on the full model)
    attempts: list[object] = []
    real = trace_step._trace

    def trace(*args: Any, **kwargs: Any) -> Any:
        attempts.append(kwargs.get("batches"))
        return (*real(*args, **kwargs)[:3], None)

    monkeypatch.setattr(trace_step, "_trace", trace)
    tiny = AnalysisOptions(
        model="deepseek-ocr-v1-tiny", workload_id="dsocr-tiny-v1", max_new_tokens=4, routing="skewed:1.2", batch_size=1
    )
    for batch in (1, 9, 10):
        run_analysis(attrs.evolve(tiny, batch_size=batch))
    assert attempts == [None, (1, 1024), None]  # the first batch leaves a note; the second tries; the third does not
    source = trusted_source(tiny.model, False)
    parts = analysis_key_parts(
        source, resolve_source_workload(tiny, source), attention="flash", routing=RoutingModel.skewed(1.2)
    )
    assert TraceCache().basis_refused(parts) and TraceCache().batch_seen(parts)
