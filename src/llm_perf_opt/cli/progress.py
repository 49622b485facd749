"""Progress on stderr for the long commands (analyze, compare, sweep, simulate, plan, calibrate, validation-doc,
measure, tree).

A command reports each step as it starts (``progress("tracing ...")``, the ``Progress`` sink the analysis pipeline
takes); the previous step ends there.  On a terminal a rich spinner shows the running step with its elapsed time, and
every step that took longer than a second leaves one line (``tracing ... 12.3s``).  Nothing is printed under
``--quiet`` or when stderr is not a terminal (a pipe, a CI log), unless ``LLM_PERF_OPT_PROGRESS=always`` asks for the
same lines there (``never`` silences a terminal too).
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from llm_perf_opt.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["PROGRESS_ENV", "PROGRESS_MODES", "SLOW_STEP_S", "StepProgress", "progress_mode"]

PROGRESS_ENV = "LLM_PERF_OPT_PROGRESS"
"""``auto`` (default: on a terminal only), ``always`` or ``never``."""

PROGRESS_MODES = ("auto", "always", "never")
"""The values :data:`PROGRESS_ENV` takes (empty or unset: ``auto``)."""


def progress_mode() -> str:
    """:data:`PROGRESS_ENV`'s value; anything but :data:`PROGRESS_MODES` is a :class:`UserError` (a typo such as
    ``alway`` silently meant ``auto``)."""
    mode = os.environ.get(PROGRESS_ENV, "") or "auto"
    if mode not in PROGRESS_MODES:
        raise UserError(f"{PROGRESS_ENV}={mode!r} is not one of {', '.join(PROGRESS_MODES)}; set one or unset it")
    return mode


SLOW_STEP_S = 1.0
"""A finished step longer than this leaves a line."""


class StepProgress:
    """Steps on stderr (see the module docstring); use as a context manager so the last step ends."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        mode = progress_mode()
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = not quiet and mode != "never" and (terminal or mode == "always")
        self.console: Console | None = None
        self.live: Progress | None = None
        self.task: TaskID | None = None
        self.step: str | None = None
        self.started = 0.0
        self.lines: list[str] = []
        if not self.enabled:
            return  # silent (a pipe, --quiet): rich is never imported, a warm analyze skips ~60 ms of imports
        # lazy: rich (~60 ms to import) only when progress is shown
        from rich.console import Console

        self.console = Console(file=self.stream, highlight=False, force_terminal=terminal, soft_wrap=True)
        if terminal:
            # lazy: rich's live display only on a terminal
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )

    def __call__(self, message: str) -> None:
        """Start the step ``message`` (ending the one before)."""
        self.finish()
        if not self.enabled:
            return
        self.step, self.started = message, time.perf_counter()
        if self.live is not None:
            if self.task is None:
                self.live.start()
                self.task = self.live.add_task(message)
            else:
                self.live.update(self.task, description=message)
                self.live.reset(self.task)

    def finish(self) -> None:
        """End the running step: one line when it took longer than :data:`SLOW_STEP_S`."""
        if self.step is None:
            return
        elapsed = time.perf_counter() - self.started
        if elapsed > SLOW_STEP_S:
            line = f"{self.step} {elapsed:.1f}s"
            self.lines.append(line)
            if self.console is not None:
                self.console.print(line, markup=False)
        self.step = None

    def close(self) -> None:
        self.finish()
        if self.live is not None and self.task is not None:
            self.live.stop()
            self.task = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
