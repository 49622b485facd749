"""Generated documentation pages (validation-doc, validation-runtimes-doc): write one, or check it is current."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from llm_perf_opt.core import atomic_write_text
from llm_perf_opt.errors import UserError

__all__ = ["page_options", "write_or_check"]

_F = TypeVar("_F", bound=Callable[..., None])


def page_options(*, source_flag: str, source_default: str, source_help: str, out_default: str) -> Callable[[_F], _F]:
    """The options of a page command, in this order: the folder it reads (passed as ``source``), ``--out`` (the page)
    and ``--check``."""
    options = (
        click.option(
            source_flag,
            "source",
            default=source_default,
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help=source_help,
        ),
        click.option("--out", default=out_default, show_default=True, type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--check", is_flag=True, help="only check that --out is up to date (exit 1 if not)"),
    )

    def add(command: _F) -> _F:
        for option in reversed(options):  # as if written top to bottom above the function
            command = option(command)
        return command

    return add


def write_or_check(out: Path, text: str, *, check: bool, source: Path, command: str, counted: str) -> None:
    """Write the generated page ``out`` atomically, or (``check``) refuse one whose text differs from ``text``.

    ``counted`` says what the page was made from (``3 measurement(s)``), ``command`` how to regenerate it.
    """
    if check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            raise UserError(f"{out} is out of date with {source}; run `{command}` and commit the result")
        click.echo(f"{out} is up to date ({counted})")
        return
    atomic_write_text(out, text)
    click.echo(f"{out} written from {counted} in {source}")
