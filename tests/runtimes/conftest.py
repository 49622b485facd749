"""Shared fixtures: the v1 base config and the standard workload (torch-free)."""

from __future__ import annotations

import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.workloads import Workload, preset_workload


@pytest.fixture(scope="session")
def v1_config() -> DeepseekOCRConfig:
    return DeepseekOCRConfig.base()


@pytest.fixture(scope="session")
def standard() -> Workload:
    return preset_workload("dsocr-standard-v1")
