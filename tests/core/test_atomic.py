from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llm_perf_opt.core import atomic_write_text, check_output_folder, staged_directory
from llm_perf_opt.core.atomic import OUTPUT_MARKER, current_umask
from llm_perf_opt.errors import UserError


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
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_staged_directory_replaces_the_target_whole(tmp_path: Path) -> None:
    """A second run into the same folder leaves nothing of the first (issue 17: stale OCR-2 layer pages)."""
    out = tmp_path / "out"
    with staged_directory(out) as stage:
        (stage / "layers").mkdir()
        (stage / "layers" / "Old.md").write_text("old")
        (stage / "report.md").write_text("1")
    with staged_directory(out) as stage:
        (stage / "layers").mkdir()
        (stage / "layers" / "New.md").write_text("new")
        (stage / "report.md").write_text("2")
    assert sorted(p.name for p in (out / "layers").iterdir()) == ["New.md"]
    assert (out / "report.md").read_text() == "2"
    assert (out / OUTPUT_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_directory_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="did not write"), staged_directory(mine):
        pass
    assert (mine / "thesis.tex").read_text() == "precious"
    old_report = tmp_path / "old"
    old_report.mkdir()
    (old_report / "report.md").write_text("before the marker")
    with staged_directory(old_report, recognise=("report.md",)) as stage:
        (stage / "sweep.csv").write_text("x")
    assert sorted(p.name for p in old_report.iterdir()) == [OUTPUT_MARKER, "sweep.csv"]


def test_check_output_folder_probes_before_any_work(tmp_path: Path) -> None:
    check_output_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"--out .* not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(UserError, match=r"--out .*(not writable|cannot be created)"):
        check_output_folder(Path("/proc/x"))


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_honour_the_umask(tmp_path: Path, mask: int) -> None:
    """mkdtemp/mkstemp make 0700/0600; a published --out folder and its files get what mkdir/open would."""
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        with staged_directory(tmp_path / "out") as stage:
            atomic_write_text(stage / "report.md", "x")
        assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~mask
        assert stat.S_IMODE((tmp_path / "out" / "report.md").stat().st_mode) == 0o666 & ~mask
    finally:
        os.umask(old)
