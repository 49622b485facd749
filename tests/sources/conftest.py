"""Shared fixtures for the built-in model tests: the full model on meta (built once) and the tiny model on CPU."""

from __future__ import annotations

import pytest
import torch

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.sources.deepseek_ocr_v1 import DeepseekOCRForCausalLM, build_model


@pytest.fixture(scope="session")
def base_meta() -> DeepseekOCRForCausalLM:
    """The full-size model on the meta device, bf16, eager attention."""
    return build_model(DeepseekOCRConfig.base())


@pytest.fixture(scope="session")
def tiny_cpu_pair() -> tuple[DeepseekOCRForCausalLM, DeepseekOCRForCausalLM]:
    """The tiny model on CPU in fp32, eager and SDPA, with identical random weights."""
    config = DeepseekOCRConfig.tiny()
    eager = build_model(config, device="cpu", dtype=torch.float32, attn_implementation="eager")
    sdpa = build_model(config, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    return eager, sdpa
