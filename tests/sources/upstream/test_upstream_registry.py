"""The upstream sources are registered with the model-source registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_perf_opt.errors import ConfigError, UserError
from llm_perf_opt.sources import known_model_sources, resolve_model_source
from llm_perf_opt.sources.upstream.source import UpstreamModelSource


def test_schemes_and_names_are_listed() -> None:
    known = known_model_sources()
    assert {"hf-snapshot:...", "hf:...", "deepseek-ocr-2"} <= set(known)


def test_hf_snapshot_resolves_with_the_v1_config(fixture_dir: Path) -> None:
    source = resolve_model_source(f"hf-snapshot:{fixture_dir}")
    assert isinstance(source, UpstreamModelSource)
    assert (source.config.hidden_size, source.config.num_hidden_layers, source.config.n_routed_experts) == (1280, 2, 4)
    assert source.config.image_token_id == 500


def test_bad_names_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs a folder"):
        resolve_model_source("hf-snapshot:")
    with pytest.raises(UserError, match="expected hf:ORG/NAME@REVISION"):
        resolve_model_source("hf:not-a-repo")
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a DeepSeek-OCR v1 family config"):
        resolve_model_source(f"hf-snapshot:{tmp_path}")
