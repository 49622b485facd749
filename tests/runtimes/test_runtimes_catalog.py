"""Which runtimes a device profile calibrates: only those that time the traced tree with it."""

from __future__ import annotations

import pytest

from llm_perf_opt.runtimes import get_runtime


@pytest.mark.parametrize(("runtime", "reads"), [("hf-eager", True), ("hf-flash", True), ("hf-cuda-graph", False),
                                                ("vllm", False), ("sglang", False)])  # fmt: skip
def test_a_profile_calibrates_the_runtimes_that_read_it_on_its_own_device(runtime: str, reads: bool) -> None:
    rt = get_runtime(runtime)
    assert rt.is_baseline is reads
    assert rt.calibrated_by(profile_device="h100-sxm", device_id="h100-sxm") is reads
    assert rt.calibrated_by(profile_device="h100-sxm", device_id="l4") is False
