"""The generated-page writer shared by ``validation-doc`` and ``validation-runtimes-doc``."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_perf_opt.cli.pages import write_or_check
from llm_perf_opt.errors import UserError


def test_write_then_check_passes_and_a_changed_page_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, source = tmp_path / "page.md", tmp_path / "src"
    write_or_check(out, "one\n", check=False, source=source, command="make-page", counted="2 file(s)")
    assert out.read_text(encoding="utf-8") == "one\n"
    write_or_check(out, "one\n", check=True, source=source, command="make-page", counted="2 file(s)")
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{out} written from 2 file(s) in {source}", f"{out} is up to date (2 file(s))"]
    with pytest.raises(UserError, match=r"out of date .* run `make-page`"):
        write_or_check(out, "two\n", check=True, source=source, command="make-page", counted="2 file(s)")
    assert out.read_text(encoding="utf-8") == "one\n"


def test_check_of_a_missing_page_fails_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "missing.md"
    with pytest.raises(UserError, match=r"missing\.md is out of date"):
        write_or_check(out, "text\n", check=True, source=tmp_path, command="make-page", counted="1 file(s)")
    assert not out.exists()
