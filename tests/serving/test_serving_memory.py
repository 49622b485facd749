"""The KV pool: device share minus weights and workspace, in blocks, with weights and KV bytes per token from the
analytic model and perf.memory."""

from __future__ import annotations

import pytest

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.serving.memory import NON_TORCH_BYTES, decoder_workspace_bytes, kv_budget
from llm_perf_opt.serving.requests import RequestMix
from llm_perf_opt.serving.settings import default_settings


def test_vllm_pool_on_an_a100_40gb() -> None:
    config, device = DeepseekOCRConfig.base(), get_device("a100-40gb")
    settings = default_settings("vllm", device)
    mix = RequestMix.pages(mode="gundam", page=(1024, 1024))
    budget = kv_budget(config=config, device=device, dtype="bf16", settings=settings, mix=mix)
    assert budget.weights_bytes == 6_672_212_480  # 3,336,106,240 params x 2 B (model-facts §2)
    assert budget.kv_bytes_per_token == 2 * 12 * 10 * 128 * 2  # 61,440 B
    decoder = decoder_workspace_bytes(T=2048, h=1280, I=6848, V=129280, B_s=256, b=2)
    assert decoder == 2048 * 2 * (3 * 1280 + 2 * 6848) + 256 * 129280 * 4
    assert budget.workspace_bytes >= decoder + NON_TORCH_BYTES
    free = int(0.9 * 40e9) - budget.weights_bytes - budget.workspace_bytes
    assert budget.blocks == free // (61_440 * 16)
    assert budget.capacity_tokens == budget.blocks * 16
    assert budget.as_dict()["kv_capacity_tokens"] == budget.capacity_tokens


def test_sglang_fraction_already_excludes_its_workspace() -> None:
    config, device = DeepseekOCRConfig.base(), get_device("h100-sxm")
    settings = default_settings("sglang", device)
    budget = kv_budget(config=config, device=device, dtype="bf16", settings=settings, mix=RequestMix(workload=None))
    assert budget.workspace_bytes == 0
    assert budget.blocks == (int(settings.memory_fraction * 80e9) - budget.weights_bytes) // 61_440


def test_no_room_for_a_cache_is_one_error() -> None:
    config, device = DeepseekOCRConfig.base(), get_device("a100-40gb")
    settings = default_settings("vllm", device, gpu_memory_utilization=0.1)
    with pytest.raises(UserError, match="no room for a KV cache"):
        kv_budget(config=config, device=device, dtype="bf16", settings=settings, mix=RequestMix(workload=None))


def test_deepseek_ocr2_pool_uses_its_own_parameters_and_v1s_decoder() -> None:
    from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config  # the published OCR-2 config

    config, device = analytic_config(), get_device("h200")
    settings = default_settings("vllm", device)
    mix = RequestMix.pages(mode="dynamic", page=(1024, 1024), config=config)
    budget = kv_budget(config=config, device=device, dtype="bf16", settings=settings, mix=mix)
    assert budget.weights_bytes == 3_389_119_360 * 2  # ocr2_model_params with the published config
    assert budget.kv_bytes_per_token == 61_440  # the decoder is v1's: 2 x 12 x 10 x 128 x 2 B
    assert mix.image_tokens == 833 and mix.vision_key == "dynamic:1024x1024"
