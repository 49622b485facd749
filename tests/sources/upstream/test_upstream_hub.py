"""hf:REPO@REVISION against a local stand-in for the Hub: revision -> commit, config and *.py only, cached."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llm_perf_opt.errors import UserError
from llm_perf_opt.sources.upstream.hub import fetch_snapshot, parse_hf_spec, wanted_files
from llm_perf_opt.sources.upstream.source import resolve_hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class LocalHub:
    """A Hub stand-in serving one repository from a folder: ``refs`` maps branch/tag names to the commit."""

    def __init__(self, files: Path, repo_id: str = "org/model") -> None:
        self.files = files
        self.repo_id = repo_id
        self.refs = {"main": COMMIT, COMMIT: COMMIT}
        self.downloads: list[str] = []
        self.info_calls = 0

    def model_info(self, repo_id: str, *, revision: str | None = None) -> Any:
        self.info_calls += 1
        if repo_id != self.repo_id or revision not in self.refs:
            raise LookupError(f"{repo_id}@{revision} not found")
        names = [*sorted(p.name for p in self.files.iterdir()), "assets/logo.py"]
        return SimpleNamespace(sha=self.refs[revision], siblings=[SimpleNamespace(rfilename=n) for n in names])

    def hf_hub_download(
        self, repo_id: str, filename: str, *, revision: str | None = None, local_dir: Any = None
    ) -> str:
        assert revision == COMMIT, "downloads must name the resolved commit"
        self.downloads.append(filename)
        target = Path(local_dir) / filename
        shutil.copyfile(self.files / filename, target)
        return str(target)


@pytest.fixture()
def hub(snapshot_copy: Any) -> LocalHub:
    root = snapshot_copy()
    (root / "model-00001-of-000001.safetensors").write_bytes(b"weights")
    (root / "tokenizer.json").write_text("{}", encoding="utf-8")
    return LocalHub(root)


def test_spec_parsing() -> None:
    spec = parse_hf_spec("hf:deepseek-ai/DeepSeek-OCR@v1.0")
    assert (spec.repo_id, spec.revision, spec.folder_name) == (
        "deepseek-ai/DeepSeek-OCR",
        "v1.0",
        "deepseek-ai--DeepSeek-OCR",
    )
    assert parse_hf_spec("hf:org/name").revision == "main"
    for bad in ("hf:noslash", "hf:org/name@", "hf:/x", "hf:a/b/c"):
        with pytest.raises(UserError, match="expected hf:ORG/NAME@REVISION"):
            parse_hf_spec(bad)


def test_only_config_and_top_level_code_are_wanted() -> None:
    names = ["config.json", "modeling_x.py", "model.safetensors", "sub/extra.py", "tokenizer.json", "README.md"]
    assert wanted_files(names) == ["config.json", "modeling_x.py"]


def test_branch_resolves_to_commit_and_fetches_code_only(hub: LocalHub, tmp_path: Path) -> None:
    source = resolve_hub("hf:org/model@main", api=hub, cache_dir=tmp_path / "cache")
    assert source.snapshot.hf_revision == COMMIT
    assert source.snapshot.hf_repo == "org/model"
    assert sorted(hub.downloads) == [
        "config.json",
        "configuration_fixture.py",
        "fixture_layers.py",
        "modeling_fixture.py",
    ]
    folder = tmp_path / "cache" / "hf" / "org--model" / COMMIT
    assert sorted(p.name for p in folder.glob("*.py")) == [
        "configuration_fixture.py",
        "fixture_layers.py",
        "modeling_fixture.py",
    ]
    assert not list(folder.glob("*.safetensors")) and not (folder / "tokenizer.json").exists()
    assert source.provenance().hf_revision == COMMIT
    assert source.name == "hf:org/model@main"


def test_cached_commit_needs_no_hub(hub: LocalHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetch_snapshot(f"hf:org/model@{COMMIT}", api=hub, cache_dir=cache)
    assert hub.info_calls == 1

    class Offline:
        def model_info(self, *a: Any, **k: Any) -> Any:
            raise AssertionError("no network expected")

        def hf_hub_download(self, *a: Any, **k: Any) -> str:
            raise AssertionError("no network expected")

    again = fetch_snapshot(f"hf:org/model@{COMMIT}", api=Offline(), cache_dir=cache)  # type: ignore[arg-type]
    assert again.hf_revision == COMMIT
    # a branch name must be resolved again (it may have moved), but the files are not downloaded twice
    fetch_snapshot("hf:org/model@main", api=hub, cache_dir=cache)
    assert hub.info_calls == 2 and len(hub.downloads) == 4


def test_hub_errors_are_one_line_user_errors(hub: LocalHub, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Hub request failed") as err:
        fetch_snapshot("hf:org/model@nope", api=hub, cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    (hub.files / "config.json").unlink()
    with pytest.raises(UserError, match=r"no config\.json"):
        fetch_snapshot("hf:org/model@main", api=hub, cache_dir=tmp_path)
