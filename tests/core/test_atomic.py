from __future__ import annotations

from pathlib import Path

import pytest

from llm_perf_opt.core import atomic_write_text, staged_directory


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "x.json", "{}\n")
    assert (tmp_path / "a" / "x.json").read_text() == "{}\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.json"]


def test_staged_directory_publishes_all_files_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_directory(out) as stage:
        (stage / "layers").mkdir()
        (stage / "report.md").write_text("r")
        (stage / "layers" / "Block.md").write_text("b")
        assert not (out / "report.md").exists()
    assert (out / "report.md").read_text() == "r"
    assert (out / "layers" / "Block.md").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_directory_writes_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(out) as stage:
        (stage / "report.md").write_text("half")
        raise RuntimeError("boom")
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
