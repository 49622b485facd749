"""Published serving points through the simulator (the serving column of docs/validation-runtimes.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from attrs import evolve

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.runtimes import get_runtime
from llm_perf_opt.runtimes.fit import FITTED_ON
from llm_perf_opt.runtimes.published import PublishedPoint, load_published
from llm_perf_opt.runtimes.validation import point_workload
from llm_perf_opt.serving.trust import QUOTED_ERRORS, SERVING_ERROR_BANDS, trust_line
from llm_perf_opt.serving.validation import (
    REQUESTS_PER_CLIENT,
    around,
    fit_prefill_host_s,
    serving_predictor,
    simulate_point,
)

PUBLISHED = Path(__file__).resolve().parents[2] / "benchmarks" / "published"
CONFIGS = {"deepseek-ocr-v1-base": DeepseekOCRConfig.base()}


def _point(point_id: str) -> PublishedPoint:
    return next(p for s in load_published(PUBLISHED) for p in s.points if p.point_id == point_id)


def test_lengths_drawn_around_a_mean_keep_it() -> None:
    assert around(188).mean == 188 and min(around(188).values) == 1 and max(around(188).values) == 375


def test_a_serving_point_is_the_simulators_closed_loop() -> None:
    point = _point("sglang-mi300x-ocr1-c100-output-tps")
    metrics = simulate_point(point, CONFIGS, point_workload)
    assert metrics["load"]["requests"] == REQUESTS_PER_CLIENT * 100 and metrics["load"]["concurrency"] == 100
    assert metrics["scheduler"]["runtime"] == "sglang" and not metrics["scheduler"]["mixed_batches"]
    predicted = serving_predictor(CONFIGS, point_workload)(point)
    assert predicted.value == metrics["throughput"]["output_tokens_per_s"]
    assert predicted.drivers.startswith("simulated closed loop C=100, 1000 requests, mean S=302")


def test_a_page_point_uses_its_mode_and_page() -> None:
    point = _point("readme-a100-pdf-output-tps")
    metrics = simulate_point(point, CONFIGS, point_workload)
    assert metrics["requests"]["mode"] == "gundam" and metrics["requests"]["page"] == [1191, 1684]
    assert metrics["requests"]["image_tokens"] == 913 - 1 - 9


def test_a_serving_point_without_concurrency_is_one_error() -> None:
    point = evolve(_point("readme-a100-pdf-output-tps"), concurrency=None)
    with pytest.raises(UserError, match="needs concurrency and output_tokens"):
        simulate_point(point, CONFIGS, point_workload)


def test_the_quoted_serving_errors_are_the_pages() -> None:
    page = (PUBLISHED.parents[1] / "docs" / "validation-runtimes.md").read_text(encoding="utf-8")
    for point_id, error in QUOTED_ERRORS.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| {point_id} |"))
        assert f"| {error * 100:+.1f}% |" in row
        pct = f"+{round(error * 100):d}%"
        runtime = _point(point_id).runtime
        assert pct in SERVING_ERROR_BANDS[runtime], (point_id, pct)
    assert re.search(
        r"expected error .*: throughput \+127%", trust_line("vllm", device_id="a100-40gb", model="deepseek-ocr-v1-base")
    )


def test_sglang_prefill_host_time_rederives_from_its_fit_point() -> None:
    """The catalog's split of the c=1 TTFT residual re-derives from the MI300X c=100 point (within 0.1 ms), and the
    split leaves the fitted c=1 TTFT unchanged."""
    rt = get_runtime("sglang")
    point = _point(FITTED_ON["sglang.prefill_host_s"])
    assert point.role == "fit"
    total = rt.request_overhead_s + rt.prefill_host_s
    fitted = fit_prefill_host_s(point=point, configs=CONFIGS, workloads=point_workload, total_s=total)
    assert abs(fitted - rt.prefill_host_s) < 1e-4
    assert 0.0 < rt.prefill_host_s < total
