"""Generated documentation pages (validation-doc, validation-runtimes-doc): write one, or check it is current."""

from __future__ import annotations

from pathlib import Path

import click

from llm_perf_opt.core import atomic_write_text
from llm_perf_opt.errors import UserError

__all__ = ["write_or_check"]


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
