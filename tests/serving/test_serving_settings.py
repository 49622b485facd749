"""Each runtime's own defaults by device (sources in serving/settings.py), overrides and their bounds."""

from __future__ import annotations

import pytest

from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.serving.settings import default_settings


def test_vllm_defaults_follow_device_memory_and_the_a100_exception() -> None:
    a100 = default_settings("vllm", get_device("a100-80gb"))
    h100 = default_settings("vllm", get_device("h100-sxm"))
    l40s = default_settings("vllm", get_device("l40s"))
    assert (a100.max_num_batched_tokens, a100.max_num_seqs) == (2048, 256)  # >= 70 GiB but an A100
    assert (h100.max_num_batched_tokens, h100.max_num_seqs) == (8192, 1024)
    assert (l40s.max_num_batched_tokens, l40s.max_num_seqs) == (2048, 256)
    assert (h100.block_size, h100.memory_fraction, h100.mixed_batches) == (16, 0.9, True)


def test_sglang_memory_fraction_from_its_reserved_memory_rule() -> None:
    h100 = default_settings("sglang", get_device("h100-sxm"))  # 80e9 B = 76,294 MiB: the < 90 GiB tier
    gpu_mib = 80e9 / 2**20
    reserved = max(512 + 8192 * 1.5 + 256 * 2 + 128, 10 * 1024)  # 12,928 MiB
    assert h100.max_num_batched_tokens == 8192 and h100.cuda_graph_max_bs == 256
    assert h100.memory_fraction == round((gpu_mib - reserved) / gpu_mib, 3)
    assert (h100.block_size, h100.mixed_batches, h100.admission_reserve_ratio) == (1, False, 0.7)


def test_hf_runtimes_run_one_static_batch() -> None:
    hf = default_settings("hf-flash", get_device("h100-sxm"))
    assert hf.static_batching and hf.max_num_seqs == 1


def test_flags_override_and_are_checked() -> None:
    s = default_settings("vllm", get_device("a100-40gb"), max_num_seqs=100, gpu_memory_utilization=0.8)
    assert (s.max_num_seqs, s.memory_fraction) == (100, 0.8)
    with pytest.raises(UserError, match="max-num-seqs must be >= 1"):
        default_settings("vllm", get_device("a100-40gb"), max_num_seqs=0)
    with pytest.raises(UserError, match=r"must be >= --max-num-seqs \(256\).* raise --max-num-batched-tokens to 256"):
        default_settings("vllm", get_device("a100-40gb"), max_num_batched_tokens=100)
    with pytest.raises(UserError, match=r"gpu-memory-utilization must be in \(0, 1\]"):
        default_settings("vllm", get_device("a100-40gb"), gpu_memory_utilization=1.5)
    with pytest.raises(UserError, match="unknown runtime 'tgi'"):
        default_settings("tgi", get_device("a100-40gb"))


def test_sglang_batches_are_not_bound_by_the_chunk_size() -> None:
    s = default_settings("sglang", get_device("a100-40gb"))
    assert (s.max_num_batched_tokens, s.max_num_seqs) == (4096, 4096)  # < 60 GiB tier; decode batches apart
