"""Model-source registry: built-in names, unknown names, extension points."""

from __future__ import annotations

import pytest
import torch

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.sources import (
    DEFAULT_MODEL_SOURCE,
    ModelSource,
    known_model_sources,
    register_scheme,
    registry,
    resolve_model_source,
)
from llm_perf_opt.workloads import Workload


def test_builtin_sources_resolve() -> None:
    assert DEFAULT_MODEL_SOURCE == "deepseek-ocr-v1-base"
    base = resolve_model_source("deepseek-ocr-v1-base")
    assert base.config == DeepseekOCRConfig.base()
    tiny = resolve_model_source("deepseek-ocr-v1-tiny")
    assert tiny.config.variant == "deepseek-ocr-v1-tiny"
    model = tiny.build()
    assert next(model.parameters()).device.type == "meta"
    inputs = tiny.make_inputs(Workload.create(mode="tiny", page=(512, 512), max_new_tokens=2))
    assert inputs.seq_len == 83
    out = model(**inputs.prefill.kwargs(), past_key_values=inputs.new_cache())
    assert out.logits.shape == (1, 83, 512)


def test_build_options_pass_through() -> None:
    model = resolve_model_source("deepseek-ocr-v1-tiny").build(
        device="cpu", dtype=torch.float32, attn_implementation="sdpa"
    )
    assert model.model.layers[0].self_attn.attn_implementation == "sdpa"
    assert model.lm_head.weight.dtype == torch.float32 and model.lm_head.weight.device.type == "cpu"


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(UnknownIdError) as info:
        resolve_model_source("deepseek-ocr-v3")
    message = str(info.value)
    assert message.startswith("unknown model source 'deepseek-ocr-v3'; expected one of: ")
    assert "deepseek-ocr-v1-base, deepseek-ocr-v1-tiny" in message  # and any sources registered later
    assert all(name in message for name in known_model_sources()) and "\n" not in message


def test_a_scheme_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_SCHEMES", dict(registry._SCHEMES))
    register_scheme("test-snapshot", lambda name: ModelSource(name=name, config=DeepseekOCRConfig.tiny()))
    assert "test-snapshot:..." in known_model_sources()
    assert resolve_model_source("test-snapshot:/tmp/x").name == "test-snapshot:/tmp/x"
    with pytest.raises(UnknownIdError, match=r"test-snapshot:\.\.\."):
        resolve_model_source("no-such-scheme:repo@rev")
