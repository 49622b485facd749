"""Shared fixtures for the upstream-source tests: the fixture snapshot (read, trusted, built once) and copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

from llm_perf_opt.sources.upstream.source import UpstreamModelSource, resolve_snapshot

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "upstream_snapshot"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def fixture_source() -> UpstreamModelSource:
    """The fixture snapshot as a trusted model source."""
    return resolve_snapshot(f"hf-snapshot:{FIXTURE}").trust(True)


@pytest.fixture(scope="session")
def fixture_model(fixture_source: UpstreamModelSource) -> nn.Module:
    """The fixture's tree on meta (bf16), built once."""
    return fixture_source.build()


@pytest.fixture()
def snapshot_copy(tmp_path: Path) -> Callable[..., Path]:
    """Copy the fixture into ``tmp_path``; ``edit(file, old, new)`` pairs change it (each must match once)."""

    def make(*edits: tuple[str, str, str]) -> Path:
        dest = tmp_path / "snapshot"
        shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__"))
        for name, old, new in edits:
            text = (dest / name).read_text(encoding="utf-8")
            assert text.count(old) == 1, f"{old!r} must occur once in {name}"
            (dest / name).write_text(text.replace(old, new), encoding="utf-8")
        return dest

    return make
