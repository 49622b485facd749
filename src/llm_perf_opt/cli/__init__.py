"""The ``llm-perf-opt`` command line.

Each command lives in its own module under ``llm_perf_opt.cli`` and is imported only when it runs, so
``llm-perf-opt --help`` and the torch-free commands start fast.  A :class:`~llm_perf_opt.errors.UserError`
becomes one line on stderr and exit code 1; click's usage errors exit with 2.  A reader that stops reading
(``llm-perf-opt ... | head -1``) is no error: the rest of the output is dropped, the command runs to its end (files
written) and exits with its own status, 0 when it succeeded, without a word about the pipe.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

from llm_perf_opt import __version__
from llm_perf_opt.errors import UserError
from llm_perf_opt.tracer import DYNAMO_STAND_IN_ENV
from llm_perf_opt.tracer.lazy_metas import defer_python_metas

__all__ = ["main"]

# command name -> "module:attribute" (module relative to this package)
COMMANDS: dict[str, str] = {
    "analyze": "analyze:analyze",
    "cache": "cache:cache",
    "calibrate": "calibrate:calibrate",
    "check": "check:check",
    "compare": "compare:compare",
    "crosscheck": "crosscheck:crosscheck",
    "devices": "devices:devices",
    "diff": "diff:diff",
    "measure": "measure:measure",
    "measure-memory": "measure_memory:measure_memory",
    "plan": "plan:plan",
    "serve": "serve:serve",
    "simulate": "simulate:simulate",
    "sweep": "sweep:sweep",
    "tree": "tree:tree",
    "validation-doc": "validation_doc:validation_doc",
    "validation-runtimes-doc": "validation_runtimes_doc:validation_runtimes_doc",
    "workloads": "workloads:workloads",
}


REAL_TORCH_COMMANDS = frozenset({"crosscheck", "measure", "measure-memory"})
"""Commands that run torch beyond our meta tracer (real devices, torch's ``FlopCounterMode``): every other command
lets ``import torch`` skip torch's Python meta kernels until a trace needs one
(:mod:`llm_perf_opt.tracer.lazy_metas`)."""


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        if cmd_name not in REAL_TORCH_COMMANDS:
            defer_python_metas()
        module_name, attr = target.split(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-perf-opt")
def cli() -> None:
    """Where DeepSeek-OCR spends time and memory - on a named GPU, for a named document workload -
    predicted from the model's module tree traced on PyTorch's meta device (no weights, no GPU)."""


def main(argv: list[str] | None = None, *, obj: dict[str, Any] | None = None) -> None:
    """Console-script entry point (``obj``: the click context object; tests pass a build backend through it).
    This process and those it starts (the server's workers) are ours: their traces may use the ``torch._dynamo``
    stand-in (:mod:`llm_perf_opt.tracer.lazy_dynamo`), and a command outside :data:`REAL_TORCH_COMMANDS` imports
    torch without its Python meta kernels until a trace needs one (:mod:`llm_perf_opt.tracer.lazy_metas`)."""
    os.environ.setdefault(DYNAMO_STAND_IN_ENV, "1")
    warnings.showwarning = _one_line_warning
    with _reader_may_leave():
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="llm-perf-opt", obj=obj)


@contextmanager
def _reader_may_leave() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` wrapped in :class:`_DropWhenClosed` while a command runs (restored after)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _DropWhenClosed(saved[0]), _DropWhenClosed(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class _DropWhenClosed:
    """A text stream that outlives its reader: once a write or flush finds the pipe closed (EPIPE), the stream's
    file descriptor is pointed at ``os.devnull`` and this and every later write succeed unseen - so the command is
    not cut short at its next ``click.echo`` (click would exit 1 there, silently).  Everything else is the wrapped
    stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _to_devnull(self) -> None:
        """Later writes, and the bytes still buffered, go to ``os.devnull`` (so no flush at exit fails either)."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        self._stream.flush()


_SHOW_WARNING = warnings.showwarning


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """This tool's own warnings (a cache entry rebuilt, a cache not written) as one ``warning: ...`` line on stderr,
    without the source line; any other warning as Python shows it."""
    if category.__module__.startswith("llm_perf_opt."):
        click.echo(f"warning: {message}", err=True)
        return
    _SHOW_WARNING(message, category, filename, lineno, file, line)
