"""Trust gating: no remote code runs without --trust-remote-code, and the refusal lists files and hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_perf_opt.errors import TrustError, UserError
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.sources.upstream.loader import loaded_packages
from llm_perf_opt.sources.upstream.snapshot import read_snapshot
from llm_perf_opt.sources.upstream.source import UpstreamModelSource, grant_trust
from llm_perf_opt.sources.upstream.trust import require_trust


def test_refusal_lists_every_file_with_its_sha256(fixture_dir: Path) -> None:
    snap = read_snapshot(fixture_dir, source="hf-snapshot:x")
    with pytest.raises(TrustError) as err:
        require_trust(snap, trust_remote_code=False)
    message = str(err.value)
    assert "\n" not in message
    assert "--trust-remote-code" in message
    for code_file in snap.code_files:
        assert f"{code_file.name} sha256={code_file.sha256}" in message
    require_trust(snap, trust_remote_code=True)  # no error


def test_untrusted_source_resolves_but_never_builds(snapshot_copy: object) -> None:
    root = snapshot_copy()  # type: ignore[operator]
    source = resolve_model_source(f"hf-snapshot:{root}")
    assert isinstance(source, UpstreamModelSource) and not source.trusted
    before = set(loaded_packages())
    with pytest.raises(TrustError, match=r"modeling_fixture\.py sha256="):
        source.build()
    with pytest.raises(TrustError):
        grant_trust(source, False)
    assert set(loaded_packages()) == before  # nothing was imported
    assert isinstance(grant_trust(source, True), UpstreamModelSource)
    assert grant_trust(source, True).trusted


def test_builtin_sources_pass_the_trust_step_unchanged() -> None:
    builtin = resolve_model_source("deepseek-ocr-v1-tiny")
    assert grant_trust(builtin, False) is builtin


def test_upstream_sources_build_on_meta_only(fixture_source: UpstreamModelSource) -> None:
    with pytest.raises(UserError, match="meta device only"):
        fixture_source.build(device="cpu")
    with pytest.raises(UserError, match="--attention eager"):
        fixture_source.build(attn_implementation="sdpa")
