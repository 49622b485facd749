"""Fixtures shared by the tracer tests."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from llm_perf_opt.sources.registry import resolve_model_source


@pytest.fixture(scope="module")
def ocr2() -> tuple[Any, nn.Module]:
    """DeepSeek-OCR-2's source and its tree on meta (skipped without transformers >= 5.10.1)."""
    # lazy: the OCR-2 config and the compat check are only needed where these tests run
    from llm_perf_opt.sources.deepseek_ocr2 import config as ocr2_config
    from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple

    if version_tuple(installed_transformers() or "0") < ocr2_config.MIN_TRANSFORMERS:
        pytest.skip("needs transformers >= 5.10.1")
    source = resolve_model_source("deepseek-ocr-2")
    return source, source.build()
