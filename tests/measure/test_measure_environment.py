"""Device description, software versions and the micro-benchmarks (CPU)."""

from __future__ import annotations

import pytest
import torch

from llm_perf_opt.hardware import device_ids
from llm_perf_opt.measure.environment import (
    copy_bandwidth_bytes_per_s,
    describe_device,
    guess_device_id,
    matmul_flops_per_s,
    software_record,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),  # not the H20: "h200" is tried first
        ("NVIDIA H20", "h20"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("Tesla T4", None),
    ],
)
def test_gpu_names_map_to_catalog_ids(name: str, expected: str | None) -> None:
    assert guess_device_id(name) == expected
    assert expected is None or expected in device_ids()


def test_cpu_description_and_benchmarks() -> None:
    record = describe_device(torch.device("cpu"), torch.float32, device_id=None, benchmark=True)
    assert record.runtime == "cpu" and record.device_id is None and record.name
    assert record.threads == torch.get_num_threads()
    assert record.memory_capacity_bytes is None or record.memory_capacity_bytes > 2**28
    # a 2-core CPU does between 1 and 10,000 GFLOP/s and moves between 0.1 and 10,000 GB/s
    assert 1e9 < (record.matmul_flops_per_s or 0) < 1e13
    assert 1e8 < (record.memory_bytes_per_s or 0) < 1e13
    assert (
        describe_device(torch.device("cpu"), torch.float32, device_id="x", benchmark=False).matmul_flops_per_s is None
    )


def test_benchmarks_round_to_six_digits() -> None:
    rate = matmul_flops_per_s(torch.device("cpu"), torch.float32, n=64, repeats=1)
    assert float(f"{rate:.6g}") == rate
    assert copy_bandwidth_bytes_per_s(torch.device("cpu"), nbytes=1 << 20, repeats=1) > 0


def test_software_versions() -> None:
    sw = software_record()
    assert sw.torch == torch.__version__
    assert sw.cuda == torch.version.cuda
    assert sw.python.count(".") == 2
