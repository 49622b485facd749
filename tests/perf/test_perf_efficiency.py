"""Default efficiencies (each with a basis) and device-profile files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llm_perf_opt.errors import UserError
from llm_perf_opt.perf import (
    CATEGORIES,
    DEFAULT_CATEGORY_EFFICIENCY,
    EFFICIENCY_BASIS,
    KERNEL_OVERHEAD_S,
    DeviceProfile,
    default_profile,
    load_device_profile,
)


def test_defaults_cover_every_category_with_a_documented_basis() -> None:
    assert set(DEFAULT_CATEGORY_EFFICIENCY) == set(CATEGORIES)
    assert all(0 < eff <= 1 for eff in DEFAULT_CATEGORY_EFFICIENCY.values())
    vector = {"norm", "activation", "embedding", "elementwise", "data_movement", "other"}
    for category in set(CATEGORIES) - vector:
        assert f"{DEFAULT_CATEGORY_EFFICIENCY[category]:.2f}" in EFFICIENCY_BASIS[category]
    assert all(f"{DEFAULT_CATEGORY_EFFICIENCY[c]:.2f}" in EFFICIENCY_BASIS["vector"] for c in vector)
    for key in ("memory", "eager", "cuda-graph"):
        assert EFFICIENCY_BASIS[key]


def test_eager_overhead_exceeds_cuda_graph_overhead() -> None:
    assert default_profile("eager").kernel_overhead_s == KERNEL_OVERHEAD_S["eager"] == 10e-6
    assert default_profile("cuda-graph").kernel_overhead_s == KERNEL_OVERHEAD_S["cuda-graph"] == 2e-6
    with pytest.raises(UserError, match="eager, cuda-graph"):
        default_profile("jit")


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data) if path.suffix == ".yaml" else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_profile_file_round_trip_with_partial_override(tmp_path: Path, suffix: str) -> None:
    data = {
        "device_id": "h100-sxm",
        "source": "calibrate run 1",
        "category_efficiency": {"linear": 0.71},
        "memory_efficiency": 0.85,
        "kernel_overhead_s": 7.5e-6,
    }
    profile = load_device_profile(_write(tmp_path / f"p{suffix}", data))
    assert profile.efficiency("linear") == 0.71
    assert profile.efficiency("attention") == DEFAULT_CATEGORY_EFFICIENCY["attention"]  # not in the file
    assert profile.memory_efficiency == 0.85 and profile.kernel_overhead_s == 7.5e-6
    assert DeviceProfile.from_mapping(profile.as_dict()) == profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category_efficiency": {"lineer": 0.5}}, "unknown category lineer; expected some of: conv2d"),
        ({"category_efficiency": {"linear": 1.5}}, r"category_efficiency\[linear\] must be in \(0, 1\]"),
        ({"memory_efficiency": 0}, r"memory_efficiency must be in \(0, 1\]"),
        ({"kernel_overhead_s": -1}, r"kernel_overhead_s must be in \[0, 1\)"),
        ({"kernel_overhead_s": "10us"}, "kernel_overhead_s must be a number"),
        ({"speed": 3}, "unknown key.*speed"),
        ({"run_id": "meas-1", "runs": []}, r"is a measurement \(from `llm-perf-opt measure`\), not a profile; .*calib"),
        ({"stage_kernel_overhead_s": {"decoding": 1e-5}}, "unknown stage.*decoding; expected some of: vision"),
        ({"stage_kernel_overhead_s": {"decode": 2}}, r"stage_kernel_overhead_s\[decode\] must be in \[0, 1\)"),
        ({"stage_kernel_overhead_s": [1e-5]}, "stage_kernel_overhead_s must map stage -> seconds"),
        ({"overlap": "yes"}, "overlap must be true or false"),
        ({"device_kernel_s": -1e-6}, r"device_kernel_s must be in \[0, 1\)"),
    ],
)
def test_bad_profile_values_are_one_line_user_errors(tmp_path: Path, change: dict[str, object], message: str) -> None:
    data = {"source": "x", "memory_efficiency": 0.8, "kernel_overhead_s": 1e-5, **change}
    with pytest.raises(UserError, match=message) as info:
        load_device_profile(_write(tmp_path / "p.yaml", data))
    assert "\n" not in str(info.value)


def test_missing_keys_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing key.*kernel_overhead_s"):
        load_device_profile(_write(tmp_path / "p.json", {"source": "x", "memory_efficiency": 0.8}))
    with pytest.raises(UserError, match="cannot read device profile"):
        load_device_profile(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="not valid JSON/YAML"):
        load_device_profile(bad)


def test_unknown_category_lookup() -> None:
    with pytest.raises(UserError, match="unknown operator category 'gemm'"):
        default_profile().efficiency("gemm")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_overlap_profile_round_trip(tmp_path: Path, suffix: str) -> None:
    data = {
        "device_id": "h100-sxm",
        "source": "calibrate",
        "memory_efficiency": 0.9,
        "kernel_overhead_s": 1.6e-5,
        "stage_kernel_overhead_s": {"prefill": 1.25e-5, "vision": 1.85e-5},
        "overlap": True,
        "device_kernel_s": 2.3e-6,
    }
    profile = load_device_profile(_write(tmp_path / f"p{suffix}", data))
    assert profile.overlap and profile.device_kernel_s == 2.3e-6
    assert profile.kernel_overhead("prefill") == 1.25e-5
    assert profile.kernel_overhead("decode") == 1.6e-5  # not named: the shared value
    assert DeviceProfile.from_mapping(profile.as_dict()) == profile
    assert list(profile.as_dict()["stage_kernel_overhead_s"]) == ["prefill", "vision"]  # sorted: stable files
    note = profile.overhead_note()
    assert note is not None and "2.30 us per kernel" in note and "18.50 us (vision)" in note


def test_plain_profile_writes_no_optional_keys() -> None:
    data = default_profile("eager").as_dict()
    assert set(data) == {"device_id", "source", "category_efficiency", "memory_efficiency", "kernel_overhead_s"}
    assert default_profile("eager").overhead_note() is None
