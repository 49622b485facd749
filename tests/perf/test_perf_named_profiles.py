"""Shipped device profiles load by name; files still load by path; an unknown name lists the names."""

from __future__ import annotations

from pathlib import Path

import pytest

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
