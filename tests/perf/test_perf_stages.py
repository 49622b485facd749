"""Stage latencies: TTFT, TPOT over N-1 steps, end to end."""

from __future__ import annotations

import pytest

from llm_perf_opt.perf import StageTimes


def test_ttft_tpot_end_to_end() -> None:
    stages = StageTimes.from_stage_seconds(
        {"vision": 0.030, "projector": 0.001, "prefill": 0.020, "decode": 5.11}, decode_steps=511
    )
    assert stages.ttft_s == pytest.approx(0.030 + 0.001 + 0.020)
    assert stages.tpot_s == pytest.approx(5.11 / 511)  # 10 ms per step
    assert stages.end_to_end_s == pytest.approx(0.051 + 5.11)
    assert stages.as_ms()["tpot_ms"] == pytest.approx(10.0)


def test_single_token_has_no_decode() -> None:
    stages = StageTimes.from_stage_seconds({"prefill": 0.5}, decode_steps=0)
    assert stages.tpot_s == 0.0
    assert stages.end_to_end_s == stages.ttft_s == 0.5


def test_other_counts_end_to_end_but_not_ttft() -> None:
    stages = StageTimes.from_stage_seconds({"prefill": 1.0, "other": 0.25}, decode_steps=0)
    assert stages.ttft_s == 1.0
    assert stages.end_to_end_s == 1.25


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        StageTimes.from_stage_seconds({"encode": 1.0}, decode_steps=0)
    with pytest.raises(ValueError, match="decode_steps"):
        StageTimes.from_stage_seconds({}, decode_steps=-1)
    with pytest.raises(ValueError, match="vision_s"):
        StageTimes(vision_s=-1.0)
