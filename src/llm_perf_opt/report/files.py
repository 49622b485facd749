"""One analysis as files: render every output of an :class:`AnalysisResult` and publish them atomically.

``report_files`` renders (JSON contracts, ``report.yaml``, ``report.md``, plots, layer pages) and never recomputes a
number; ``publish_files`` writes a folder whose files appear complete or not at all.  ``build_report_files`` is
:func:`~llm_perf_opt.analysis.pipeline.run_analysis` then ``report_files`` (what the HTTP service stores).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import asdict

from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.analysis.pipeline import Progress, run_analysis
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.contracts.converter import to_json
from llm_perf_opt.core import staged_directory
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.figures import report_plots
from llm_perf_opt.report.layers import render_layer_pages
from llm_perf_opt.report.markdown import render_report_md
from llm_perf_opt.report.yaml_out import render_report_yaml

__all__ = ["REPORT_FILES", "build_report_files", "publish_files", "report_files", "write_report"]

REPORT_FILES = ("report.md", "model.json", "options.json")
"""Files that mark a folder as an earlier report (written before the output marker existed): ``--out`` may
replace such a folder whole."""


def report_files(result: AnalysisResult) -> dict[str, bytes]:
    """Every output file of one analysis, by relative path (deterministic bytes)."""
    files: dict[str, bytes] = {
        "options.json": _json_bytes(_options_payload(result.options)),
        "model.json": to_json(result.model).encode("utf-8"),
        "summary.json": to_json(result.summary).encode("utf-8"),
        "validation.json": _json_bytes(result.validation),
        "report.yaml": render_report_yaml(result).encode("utf-8"),
        "report.md": render_report_md(result).encode("utf-8"),
    }
    files.update(report_plots(result))
    files.update({path: text.encode("utf-8") for path, text in render_layer_pages(result).items()})
    return files


def build_report_files(
    options: AnalysisOptions,
    *,
    progress: Progress | None = None,
    use_cache: bool = True,
    prepare_batches: bool = False,
) -> dict[str, bytes]:
    """:func:`run_analysis` then :func:`report_files` (what the HTTP service stores) in a process that goes on
    afterwards; ``use_cache``, ``prepare_batches``: see :func:`run_analysis`."""
    result = run_analysis(
        options, progress=progress, use_cache=use_cache, prepare_batches=prepare_batches, exits_after=False
    )
    return report_files(result)


def write_report(
    result: AnalysisResult,
    out_dir: Path,
    *,
    progress: Progress | None = None,
) -> dict[str, bytes]:
    """Render and publish into ``out_dir``: every file appears complete or not at all."""
    files = report_files(result)
    publish_files(files, out_dir)
    if progress is not None:
        progress(f"wrote {len(files)} files to {out_dir}")
    return files


def publish_files(files: Mapping[str, bytes], out_dir: Path) -> None:
    """Write ``files`` (relative path -> bytes) into a fresh staging folder that then replaces ``out_dir`` whole
    (nothing stale survives); an OSError is one line."""
    try:
        with staged_directory(out_dir, recognise=REPORT_FILES) as stage:
            for rel, data in files.items():
                target = stage / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write report to {out_dir}: {exc.strerror or exc}; choose another --out") from None


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _options_payload(options: AnalysisOptions) -> dict[str, Any]:
    data = asdict(options, recurse=False)
    data["page"] = list(options.page) if options.page else None
    return data
