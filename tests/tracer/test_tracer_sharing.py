"""What traces of one tree share in a process: a hook between passes (which may trace the tree itself), and the row
stages of one page's shapes."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from torch import nn

from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer import engine
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.sharing import at_boundary, between_passes, remembering_rows, rows_memo
from llm_perf_opt.tracer.trace import trace_rows_ahead, trace_workload
from llm_perf_opt.workloads import RoutingModel, Workload

ROUTING = RoutingModel.skewed(1.2)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, nn.Module, Workload]:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    work = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=4, batch_size=9, config=source.config)
    return source, source.build(attn_implementation="sdpa"), work


def _trace(tiny: tuple[Any, nn.Module, Workload], batch: int) -> TraceResult:
    source, model, work = tiny
    return trace_workload(source, attrs.evolve(work, batch_size=batch), model=model, routing=ROUTING)


def _same(a: TraceResult, b: TraceResult) -> None:
    assert (a.nodes, a.op_ledger, a.unsupported, a.uncalled_modules) == (
        b.nodes,
        b.op_ledger,
        b.unsupported,
        b.uncalled_modules,
    )
    assert (a.batch_note, a.decode_note) == (b.batch_note, b.decode_note)


def _passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every pass traced from now on, in order: 1 for a row pass (cut after the vision stages), 0 for any other."""
    rows: list[int] = []
    run_pass = engine._run_pass

    def spy(*args: Any, boundary: bool = True) -> Any:
        rows.append(0 if boundary else 1)
        return run_pass(*args, boundary=boundary)

    monkeypatch.setattr(engine, "_run_pass", spy)
    return rows


def test_a_trace_run_between_the_passes_of_another_changes_neither(
    tiny: tuple[Any, nn.Module, Workload], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background basis process traces a batch someone waits for before a pass of its build, on the same tree."""
    plain_outer, plain_inner = _trace(tiny, 9), _trace(tiny, 12)
    events: list[tuple[str, str]] = []
    inside = [False]
    run_pass = engine._run_pass

    def spy(*args: Any, boundary: bool = True) -> Any:
        events.append(("inner" if inside[0] else "outer", "pass" if boundary else "row"))
        return run_pass(*args, boundary=boundary)

    monkeypatch.setattr(engine, "_run_pass", spy)
    inner: list[TraceResult] = []

    def hook() -> None:
        events.append(("outer", "hook"))
        if not inner:
            inside[0] = True
            inner.append(_trace(tiny, 12))
            inside[0] = False

    with between_passes(hook):
        outer = _trace(tiny, 9)
    _same(outer, plain_outer)
    _same(inner[0], plain_inner)
    # the hook ran right before every pass of the outer trace but its three row passes (cut after the vision
    # stages), and never inside the trace it ran
    mine = [what for who, what in events if who == "outer"]
    passes = mine.count("pass")
    assert passes >= 4  # (the language prefill and three decode steps)
    assert mine == ["row", "row", "row", *["pass", "hook"] * passes]
    assert ("inner", "hook") not in events and ("inner", "pass") in events


def test_the_hook_is_not_called_outside_the_block_or_inside_itself() -> None:
    seen: list[str] = []

    def hook() -> None:
        seen.append("hook")
        at_boundary()  # (a trace the hook runs calls it too: nothing then)

    at_boundary()
    with between_passes(hook):
        at_boundary()
    at_boundary()
    assert seen == ["hook"]


def test_traces_under_remembering_rows_trace_the_row_stages_once(
    tiny: tuple[Any, nn.Module, Workload], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = {b: _trace(tiny, b) for b in (9, 12, 30)}
    rows = _passes(monkeypatch)
    with remembering_rows():
        remembered = {b: _trace(tiny, b) for b in (9, 12, 30)}
    for b, result in remembered.items():
        _same(result, plain[b])
    assert sum(rows) == 3  # the rows at batch 1, 2, 3, traced by the first trace only
    rows.clear()
    _trace(tiny, 12)
    assert sum(rows) == 3  # outside the block every trace traces them


def test_the_row_memo_is_keyed_by_the_tree_and_the_page_not_the_batch_output_length_or_preset(
    tiny: tuple[Any, nn.Module, Workload],
) -> None:
    source, model, work = tiny
    flags: dict[str, Any] = {"source": source.name, "attention": "flash", "verify": False, "replay": True}
    assert rows_memo(model, work, **flags) is None  # outside remembering_rows
    with remembering_rows():
        memo = rows_memo(model, work, **flags)
        assert memo is not None
        assert rows_memo(model, attrs.evolve(work, batch_size=300, max_new_tokens=40), **flags) is memo
        # a batch override drops the preset's name: the rows its command traced ahead are still the ones it reads
        named, renamed = attrs.evolve(work, profile_id="dsocr-standard-v1"), attrs.evolve(work, profile_id=None)
        assert rows_memo(model, named, **flags) is rows_memo(model, renamed, **flags) is memo
        other_page = Workload.create(mode="tiny", page=(640, 640), config=source.config)
        assert rows_memo(model, other_page, **flags) is not memo
        assert rows_memo(model, work, **{**flags, "attention": "eager"}) is not memo
        assert rows_memo(nn.Linear(1, 1), work, **flags) is not memo


def test_rows_traced_ahead_are_the_ones_a_later_trace_reads(
    tiny: tuple[Any, nn.Module, Workload], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background basis process traces the page's rows while it waits for its command to exit."""
    source, model, work = tiny
    plain = _trace(tiny, 12)
    rows = _passes(monkeypatch)
    trace_rows_ahead(source, attrs.evolve(work, batch_size=1), model=model, routing=ROUTING)
    assert rows == []  # outside remembering_rows: nothing to keep them in
    with remembering_rows():
        trace_rows_ahead(source, attrs.evolve(work, batch_size=1), model=model, routing=ROUTING)
        assert rows == [1, 1, 1]
        trace_rows_ahead(source, work, model=model, routing=ROUTING)
        assert rows == [1, 1, 1]  # held already
        _same(_trace(tiny, 12), plain)
    assert sum(rows) == 3  # the trace read them


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_a_batch_below_the_extrapolation_threshold_reads_the_remembered_rows(
    tiny: tuple[Any, nn.Module, Workload], monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """Where the rows were traced ahead, a batch that a trace elsewhere traces row by row (below 8) reads them too:
    its language traced alone, the same counts on every node."""
    source, model, work = tiny
    plain = _trace(tiny, batch)
    assert plain.batch_method == "traced"
    rows = _passes(monkeypatch)
    with remembering_rows():
        trace_rows_ahead(source, work, model=model, routing=ROUTING)
        rows.clear()
        remembered = _trace(tiny, batch)
    assert rows and sum(rows) == 0  # no row pass: the vision stages came from the memo
    assert (remembered.nodes, remembered.op_ledger, remembered.unsupported, remembered.uncalled_modules) == (
        plain.nodes,
        plain.op_ledger,
        plain.unsupported,
        plain.uncalled_modules,
    )
    assert remembered.batch_note.startswith("vision and projector traced at batch 1, 2, 3")
    assert ("extrapolated to" in remembered.batch_note) == (batch > 3)
