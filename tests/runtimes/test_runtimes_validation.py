"""docs/validation-runtimes.md is current; fitted constants re-derive from their points; pluggable predictors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.runtimes import get_runtime
from llm_perf_opt.runtimes.bands import ERROR_BANDS, trust_line
from llm_perf_opt.runtimes.costs import ModelConfig
from llm_perf_opt.runtimes.fit import FITTED_ON, fit_request_overhead_s, fit_step_host_s
from llm_perf_opt.runtimes.published import PublishedPoint, load_published
from llm_perf_opt.runtimes.validation import Predicted, Predictor, default_predictors, point_workload, validate
from llm_perf_opt.runtimes.validation_md import error_bands
from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def configs() -> dict[str, ModelConfig]:
    return {"deepseek-ocr-v1-base": DeepseekOCRConfig.base(), "deepseek-ocr-2": analytic_config()}


def _points() -> dict[str, PublishedPoint]:
    return {p.point_id: p for s in load_published() for p in s.points}


def test_committed_page_is_current() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "validation-runtimes-doc",
            "--published",
            str(ROOT / "benchmarks" / "published"),
            "--out",
            str(ROOT / "docs" / "validation-runtimes.md"),
            "--check",
        ],
    )
    assert result.exit_code == 0, result.output


def test_stale_page_is_one_line_and_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "v.md"
    out.write_text("old\n", encoding="utf-8")
    args = ["validation-runtimes-doc", "--published", str(ROOT / "benchmarks" / "published"), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--check"])
    assert result.exit_code == 1 and "out of date" in result.output
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, [*args, "--check"]).exit_code == 0


def test_fit_points_are_marked_fit_and_constants_rederive(configs: dict[str, ModelConfig]) -> None:
    points = _points()
    assert all(points[pid].role == "fit" for pid in FITTED_ON.values())
    rt = get_runtime("sglang")
    host = points[FITTED_ON["sglang.step_host_s"]]
    step = fit_step_host_s(runtime=rt, point=host, config=configs[host.model], probe=point_workload(host))
    assert math.isclose(step, rt.step_host_s, abs_tol=5e-6)  # the catalog holds it rounded to 10 us
    ttft = points[FITTED_ON["sglang.request_overhead_s"]]
    over = fit_request_overhead_s(runtime=rt, point=ttft, config=configs[ttft.model], probe=point_workload(ttft))
    assert math.isclose(over, rt.request_overhead_s, abs_tol=5e-5)


def _single_request_only(configs: dict[str, ModelConfig]) -> dict[str, Predictor]:
    """The bands quote single-request holdouts only; serving points (some with metrics only the simulator gives)
    are left unpredicted here."""
    return {"single-request": default_predictors(configs, point_workload)["single-request"]}


def test_single_request_holdouts_meet_the_goal_and_bands_quote_them(configs: dict[str, ModelConfig]) -> None:
    results = validate(load_published(), _single_request_only(configs))
    single = [r for r in results if r.point.kind == "single-request" and r.point.role == "holdout"]
    assert single and all(r.within_goal for r in single)
    bands = error_bands(results)
    assert bands["sglang"].startswith("+-")
    assert "not validated" in bands["hf-cuda-graph"]


def test_a_serving_predictor_can_be_plugged_in(configs: dict[str, ModelConfig]) -> None:
    predictors = default_predictors(configs, point_workload)
    predictors["serving"] = lambda point: Predicted(value=point.value * 1.1, drivers="simulator")
    results = validate(load_published(), predictors)
    serving = [r for r in results if r.point.kind == "serving"]
    assert serving and all(math.isclose(r.error or 0.0, 0.1) for r in serving)


def test_quoted_error_bands_match_the_validation_page(configs: dict[str, ModelConfig]) -> None:
    live = error_bands(validate(load_published(), _single_request_only(configs)))
    for rid in ("sglang", "vllm", "hf-cuda-graph"):
        assert ERROR_BANDS[rid].startswith(live[rid]), (rid, live[rid])
    assert set(ERROR_BANDS) == set(live)
    assert "uncalibrated" in trust_line(
        "hf-eager", calibrated=False, device_id="h100-sxm", model="deepseek-ocr-v1-base"
    )
