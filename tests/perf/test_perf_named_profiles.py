"""Shipped device profiles load by name; files still load by path; an unknown name lists the names."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.perf import load_device_profile
from llm_perf_opt.perf.named_profiles import named_profiles, resolve_profile_path


def test_h100_profiles_ship_and_load() -> None:
    assert {"h100-sxm-hf-eager-gate", "h100-sxm-hf-eager-balanced"} <= set(named_profiles())
    for name in named_profiles():
        profile = load_device_profile(resolve_profile_path(name))
        assert profile.device_id == "h100-sxm"
        assert profile.overlap and "calibrate" in profile.source


def test_a_file_path_wins_and_unknown_names_list_the_shipped_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("source: x\nmemory_efficiency: 0.8\nkernel_overhead_s: 1.0e-5\n", encoding="utf-8")
    assert resolve_profile_path(str(path)) == path
    with pytest.raises(UnknownIdError, match="h100-sxm-hf-eager-gate"):
        resolve_profile_path("no-such-profile")


MEASUREMENTS = Path(__file__).resolve().parents[2] / "benchmarks" / "measurements"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "patterns"),
    [
        ("h100-sxm-hf-eager-gate", ["nvidia-h100-*-gate-routing.json"]),
        ("h100-sxm-hf-eager-balanced", ["nvidia-h100-*-bf16-eager.json", "nvidia-h100-*-bf16-sdpa.json"]),
    ],
)
def test_shipped_profiles_are_what_calibrate_fits_on_the_committed_files(
    tmp_path: Path, name: str, patterns: list[str]
) -> None:
    files = sorted({str(p) for pattern in patterns for p in MEASUREMENTS.glob(pattern)})
    out = tmp_path / "fitted.yaml"
    result = CliRunner().invoke(cli, ["calibrate", "--quiet", "--out", str(out), *files])
    assert result.exit_code == 0, result.output
    fitted, shipped = load_device_profile(out), load_device_profile(resolve_profile_path(name))
    runs = re.compile(r"meas-\w+-\w+")
    assert set(runs.findall(fitted.source)) == set(runs.findall(shipped.source))  # the same runs
    pairs = [
        (fitted.memory_efficiency, shipped.memory_efficiency),
        (fitted.kernel_overhead_s, shipped.kernel_overhead_s),
    ]
    pairs += [(fitted.device_kernel_s, shipped.device_kernel_s)]
    pairs += [(fitted.category_efficiency[c], v) for c, v in shipped.category_efficiency.items()]
    pairs += [(fitted.stage_kernel_overhead_s[s], v) for s, v in shipped.stage_kernel_overhead_s.items()]
    for got, want in pairs:
        assert got is not None and want is not None and math.isclose(got, want, rel_tol=1e-12), (got, want)
        if want in (0.5, 1.0):  # a parameter the data do not see keeps its prior (or its bound) exactly
            assert got == want
