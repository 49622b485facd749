"""Progress on stderr: a spinner and one line per slow step on a terminal, nothing otherwise (issue 17)."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli, progress
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


def test_an_unknown_progress_value_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "bogus")
    result = CliRunner().invoke(cli, ["sweep", "--device", "h100-sxm", "--quiet"])
    assert result.exit_code == 1
    assert (
        result.output == "error: LLM_PERF_OPT_PROGRESS='bogus' is not one of auto, always, never; set one or unset it\n"
    )
    monkeypatch.setenv(progress.PROGRESS_ENV, "")
    assert StepProgress(stream=io.StringIO()).enabled is False  # empty: auto, and not a terminal
