"""The device catalog: completeness, published numbers, dense-vs-sparse, and error messages."""

from __future__ import annotations

import math
import re
from importlib import resources

import pytest
import yaml

import llm_perf_opt.hardware as hardware
from llm_perf_opt.errors import UnknownIdError, UserError
from llm_perf_opt.hardware import DTYPES, DeviceSpec, device_ids, get_device, list_devices, normalize_dtype

REQUIRED = (
    "h100-sxm",
    "h100-pcie",
    "h200",
    "h20",
    "a100-40gb",
    "a100-80gb",
    "l40s",
    "rtx-4090",
    "rtx-5090",
    "b200",
)


def test_every_required_device_is_present() -> None:
    assert set(REQUIRED) <= set(device_ids())


@pytest.mark.parametrize("device_id", REQUIRED)
def test_every_field_positive_and_sourced(device_id: str) -> None:
    spec = get_device(device_id)
    assert spec.sm_count > 0
    assert spec.memory_capacity_bytes > 0
    assert spec.memory_bandwidth_bytes_per_s > 0
    assert all(rate > 0 for rate in spec.peak_flops.values())
    assert {"fp32", "tf32", "bf16", "fp16"} <= set(spec.peak_flops)
    assert spec.source.strip()
    assert re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", spec.source_date)


@pytest.mark.parametrize("device_id", REQUIRED)
def test_dense_peaks_are_below_the_published_sparse_ones(device_id: str) -> None:
    spec = get_device(device_id)
    for dtype, sparse in spec.sparse_peak_flops.items():
        dense = spec.peak_flops[dtype]
        assert dense < sparse
        assert dense == pytest.approx(sparse / 2, rel=0.02)  # 2:4 sparsity doubles the marketing figure


@pytest.mark.parametrize("device_id", REQUIRED)
def test_peaks_ordered_by_precision(device_id: str) -> None:
    peak = get_device(device_id).peak_flops
    assert peak["fp32"] <= peak["tf32"] <= peak["bf16"] == peak["fp16"]
    if "fp8" in peak:
        assert peak["fp8"] >= peak["bf16"]


def test_h100_sxm_published_numbers() -> None:
    spec = get_device("h100-sxm")
    assert spec.peak_flops["bf16"] == 989.4e12  # 132 SMs x 4 TC x 1024 FLOP/clk x 1.83 GHz
    assert spec.peak_flops["fp8"] == 1978.9e12
    assert spec.peak_flops["fp32"] == 66.9e12
    assert spec.memory_bandwidth_bytes_per_s == 3.35e12
    assert spec.memory_capacity_bytes == 80_000_000_000
    assert spec.sm_count == 132


def test_geforce_bf16_is_the_fp32_accumulate_rate() -> None:
    assert get_device("rtx-4090").peak_flops["bf16"] == 165.2e12  # not the 330.3 FP16-accumulate figure
    assert get_device("rtx-5090").peak_flops["bf16"] == 209.5e12  # not 419
    assert get_device("rtx-5090").memory_bandwidth_bytes_per_s == 1792e9


def test_h200_shares_h100_compute_with_more_memory() -> None:
    h100, h200 = get_device("h100-sxm"), get_device("h200")
    assert h200.peak_flops == h100.peak_flops
    assert h200.memory_bandwidth_bytes_per_s == 4.8e12
    assert h200.memory_capacity_bytes == 141_000_000_000


def test_ampere_has_no_fp8_and_says_which_dtypes_it_has() -> None:
    spec = get_device("a100-40gb")
    assert "fp8" not in spec.peak_flops
    with pytest.raises(UnknownIdError, match=r"fp8.*bf16, fp16, fp32, tf32"):
        spec.matmul_peak_flops("fp8")


def test_matmul_and_vector_peaks() -> None:
    spec = get_device("h100-sxm")
    assert spec.matmul_peak_flops("bfloat16") == 989.4e12
    assert spec.matmul_peak_flops("fp32") == 66.9e12  # fp32 matmul without TF32 runs on CUDA cores
    assert spec.vector_peak_flops == 66.9e12


def test_unknown_device_lists_the_known_ids() -> None:
    with pytest.raises(UnknownIdError) as info:
        get_device("h300")
    message = str(info.value)
    assert "h300" in message
    assert all(device_id in message for device_id in REQUIRED)


def test_device_lookup_is_case_insensitive() -> None:
    assert get_device(" H100-SXM ").device_id == "h100-sxm"


def test_unknown_dtype_lists_the_allowed() -> None:
    with pytest.raises(UnknownIdError, match=r"'int4'.*bf16.*fp8.*tf32"):
        normalize_dtype("int4")
    assert normalize_dtype("bfloat16") == "bf16"
    assert normalize_dtype("FP16") == "fp16"


def test_list_devices_is_sorted_and_serialisable() -> None:
    specs = list_devices()
    assert [s.device_id for s in specs] == sorted(s.device_id for s in specs)
    data = specs[0].as_dict()
    assert list(data["peak_flops"]) == [d for d in DTYPES if d in data["peak_flops"]]
    assert DeviceSpec.from_mapping(data) == specs[0]


def test_malformed_data_is_a_user_error() -> None:
    good = get_device("h100-sxm").as_dict()
    without = {k: v for k, v in good.items() if k != "sm_count"}
    with pytest.raises(UserError, match="missing key 'sm_count'"):
        DeviceSpec.from_mapping(without)
    with pytest.raises(UserError, match="peak_flops"):
        DeviceSpec.from_mapping({**good, "peak_flops": {"bf16": -1.0}})
    with pytest.raises(UserError, match="source_date"):
        DeviceSpec.from_mapping({**good, "source_date": "last year"})


def test_all_is_complete() -> None:
    public = {name for name in vars(hardware) if not name.startswith("_") and name not in {"catalog", "annotations"}}
    assert public == set(hardware.__all__)


PUBLISHED_MEASUREMENT_DEVICES = ("mi300x", "a10", "a10g", "l4", "t4", "rtx-pro-6000")


@pytest.mark.parametrize("device_id", PUBLISHED_MEASUREMENT_DEVICES)
def test_devices_of_published_measurements_are_sourced(device_id: str) -> None:
    spec = get_device(device_id)
    assert spec.memory_capacity_bytes > 0 and spec.memory_bandwidth_bytes_per_s > 0
    assert spec.peak_flops["fp16"] > spec.peak_flops["fp32"] > 0  # tensor cores beat the vector units
    assert all(
        math.isclose(spec.sparse_peak_flops[d], 2 * spec.peak_flops[d], rel_tol=1e-3) for d in spec.sparse_peak_flops
    )
    assert spec.source.strip()
    assert re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", spec.source_date)


def test_t4_has_no_bf16_and_says_so() -> None:
    with pytest.raises(UnknownIdError, match="bf16"):
        get_device("t4").matmul_peak_flops("bf16")


def test_mi300x_datasheet_numbers() -> None:
    spec = get_device("mi300x")
    assert spec.peak_flops["bf16"] == 1307.4e12
    assert spec.memory_bandwidth_bytes_per_s == 5.3e12
    assert spec.memory_capacity_bytes == 192e9


def test_catalog_reads_the_same_specs_as_the_pure_python_loader() -> None:
    """The catalog goes through libyaml when PyYAML has it; every shipped file must give the same spec as the
    pure-Python safe loader."""
    for entry in resources.files("llm_perf_opt.hardware").joinpath("data").iterdir():
        if entry.name.endswith(".yaml"):
            spec = DeviceSpec.from_mapping(yaml.safe_load(entry.read_text(encoding="utf-8")), where=entry.name)
            assert get_device(spec.device_id) == spec
