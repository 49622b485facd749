"""Progress on stderr: a spinner and one line per slow step on a terminal, nothing otherwise (issue 17)."""

from __future__ import annotations

import io

import pytest

from llm_perf_opt.cli import progress
from llm_perf_opt.cli.progress import StepProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal_or_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "SLOW_STEP_S", 0.0)
    pipe = io.StringIO()
    with StepProgress(stream=pipe) as say:
        say("tracing")
        say("timing")
    assert pipe.getvalue() == ""
    terminal = _Terminal()
    with StepProgress(stream=terminal, quiet=True) as say:
        say("tracing")
    assert terminal.getvalue() == ""


def test_a_terminal_gets_one_line_per_slow_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "SLOW_STEP_S", 0.0)
    terminal = _Terminal()
    with StepProgress(stream=terminal) as say:
        say("tracing the model")
        say("timing on h100-sxm")
    assert say.lines[0].startswith("tracing the model ") and say.lines[1].startswith("timing on h100-sxm ")
    assert "tracing the model" in terminal.getvalue()


def test_fast_steps_leave_no_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    pipe = io.StringIO()
    with StepProgress(stream=pipe) as say:
        say("a step far shorter than a second")
    assert say.lines == [] and pipe.getvalue() == ""
