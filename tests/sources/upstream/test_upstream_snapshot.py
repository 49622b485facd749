"""Snapshot folders: config and code read and hashed, weights listed and never opened, one-line errors."""

from __future__ import annotations

import builtins
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_perf_opt.errors import ConfigError
from llm_perf_opt.sources.upstream.snapshot import read_snapshot


def test_every_code_file_is_hashed_with_sha256(fixture_dir: Path) -> None:
    snap = read_snapshot(fixture_dir)
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(fixture_dir.glob("*.py"))}
    assert snap.code_hashes == expected
    assert sorted(snap.code_hashes) == ["configuration_fixture.py", "fixture_layers.py", "modeling_fixture.py"]
    assert snap.config_sha256 == hashlib.sha256((fixture_dir / "config.json").read_bytes()).hexdigest()
    assert snap.auto_map["AutoModel"] == "modeling_fixture.DeepseekOCRForCausalLM"


def test_weights_are_listed_but_never_opened(
    snapshot_copy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = snapshot_copy()
    (root / "model.safetensors").write_bytes(b"not really weights")
    (root / "pytorch_model.bin").write_bytes(b"nor these")
    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_io(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_io_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy_io)
    snap = read_snapshot(root)
    assert snap.weight_files == ("model.safetensors", "pytorch_model.bin")
    assert any(p.endswith("config.json") for p in opened)
    assert not [p for p in opened if p.endswith((".safetensors", ".bin"))]


def test_fingerprint_follows_the_code(snapshot_copy: Callable[..., Path], fixture_dir: Path) -> None:
    original = read_snapshot(fixture_dir)
    edited = read_snapshot(
        snapshot_copy(("fixture_layers.py", "self.variance_epsilon = eps", "self.variance_epsilon = eps * 1"))
    )
    assert original.fingerprint != edited.fingerprint
    assert original.code_hashes["modeling_fixture.py"] == edited.code_hashes["modeling_fixture.py"]
    assert original.code_hashes["fixture_layers.py"] != edited.code_hashes["fixture_layers.py"]


def test_missing_folder_and_bad_config_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder") as missing:
        read_snapshot(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"config\.json is missing") as no_config:
        read_snapshot(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as bad:
        read_snapshot(tmp_path / "bad")
    for err in (missing, no_config, bad):
        assert "\n" not in str(err.value)
