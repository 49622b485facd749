"""``llm-perf-opt validation-runtimes-doc``: regenerate docs/validation-runtimes.md from benchmarks/published/."""

from __future__ import annotations

from pathlib import Path

import click
from attrs import evolve

from llm_perf_opt.cli.pages import page_options, write_or_check

__all__ = ["COMMAND", "validation_runtimes_doc"]

COMMAND = "llm-perf-opt validation-runtimes-doc"


@click.command("validation-runtimes-doc")
@page_options(
    source_flag="--published",
    source_default="benchmarks/published",
    source_help="folder of published-measurement YAML files",
    out_default="docs/validation-runtimes.md",
)
def validation_runtimes_doc(source: Path, out: Path, check: bool) -> None:
    """Predicted versus published, per point, for every runtime (vLLM, SGLang, HF)."""
    # lazy: the command's imports load the analytic model and the OCR-2 config only when it runs
    from llm_perf_opt.config import DeepseekOCRConfig
    from llm_perf_opt.errors import UserError
    from llm_perf_opt.runtimes.catalog import RUNTIMES
    from llm_perf_opt.runtimes.costs import ModelConfig
    from llm_perf_opt.runtimes.published import load_published
    from llm_perf_opt.runtimes.validation import default_predictors, point_workload, validate
    from llm_perf_opt.runtimes.validation_md import render_runtime_validation
    from llm_perf_opt.serving.validation import serving_predictor
    from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config

    sources = load_published(source)
    if not sources:
        raise UserError(f"no published-measurement files (*.yaml) in {source}")
    configs: dict[str, ModelConfig] = {
        "deepseek-ocr-v1-base": DeepseekOCRConfig.base(),
        "deepseek-ocr-2": analytic_config(),
    }
    predictors = default_predictors(configs, point_workload)
    predictors["serving"] = serving_predictor(configs, point_workload)  # the serving simulator, not the estimate
    results = validate(sources, predictors)
    flat = {rid: evolve(rt, fused_moe=False) for rid, rt in RUNTIMES.items() if rt.fused_moe}
    before = default_predictors(configs, point_workload, runtimes=flat)
    before["serving"] = serving_predictor(configs, point_workload, runtimes=flat)
    text = render_runtime_validation(sources, results, command=COMMAND, without_moe_curve=validate(sources, before))
    write_or_check(out, text, check=check, source=source, command=COMMAND, counted=f"{len(results)} published point(s)")
