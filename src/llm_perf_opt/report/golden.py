"""Report goldens for CI: find a golden's ``model.json`` and the options that made it, regenerate, and compare.

A report golden is a report folder written by ``analyze`` (or the path of its ``model.json``); ``options.json``
beside ``model.json`` holds the :class:`AnalysisOptions` (model source, workload and overrides, device, dtype,
attention, routing) that produced it.  :func:`check_golden` runs the same analysis again (optionally with another
model source) and diffs the fresh ``model.json`` against the golden one: any moved node or cost beyond the tolerance
is a difference.  Pinned goldens (traced trees of upstream code) are :mod:`llm_perf_opt.analysis.pinned`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from attrs import evolve, frozen

from llm_perf_opt.analysis.options import AnalysisOptions, options_from_payload
from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import (
    DEFAULT_TOLERANCE,
    ReportDiff,
    diff_snapshots,
    load_snapshot,
    snapshot_from_mapping,
    with_report_yaml,
)
from llm_perf_opt.report.files import build_report_files

__all__ = [
    "CheckResult",
    "Golden",
    "check_golden",
    "load_golden",
]


@frozen(kw_only=True)
class Golden:
    """A golden's files and the options read from it."""

    folder: Path
    model_json: Path
    options: AnalysisOptions
    report_id: str | None


@frozen(kw_only=True)
class CheckResult:
    """The regenerated files and their diff against the golden."""

    golden: Golden
    fresh_report_id: str | None
    diff: ReportDiff
    files: Mapping[str, bytes]


def load_golden(path: str | Path) -> Golden:
    """Locate ``model.json`` and ``options.json`` (folder or ``model.json`` path) and read the options."""
    p = Path(path)
    model_json = p / "model.json" if p.is_dir() else p
    if not model_json.is_file():
        raise UserError(f"golden {path} not found: pass a report folder written by analyze, or its model.json")
    folder = model_json.parent
    options_file = folder / "options.json"
    if not options_file.is_file():
        raise UserError(
            f"golden {path} has no options.json beside model.json; regenerate it with `llm-perf-opt analyze --out DIR`"
        )
    payload = _read_json(options_file)
    report_id = None
    try:
        report_id = json.loads(model_json.read_text(encoding="utf-8")).get("report_id")
    except (OSError, ValueError, AttributeError):
        report_id = None  # load_snapshot reports a broken model.json with a proper message
    return Golden(
        folder=folder, model_json=model_json, options=options_from_payload(payload, base=folder), report_id=report_id
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def check_golden(
    path: str | Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: Any = None,
    model: str | None = None,
    trust_remote_code: bool = False,
    use_cache: bool = True,
    counts_only: bool = False,
) -> CheckResult:
    """Regenerate the report ``path`` describes and diff its ``model.json`` against the golden's.

    ``model`` re-runs the golden's options with another model source (e.g. a new ``hf:REPO@REV``);
    ``trust_remote_code`` allows a remote-code source to run; without ``use_cache`` the trace is made afresh.
    """
    golden = load_golden(path)
    options = golden.options
    if model is not None or trust_remote_code:
        options = evolve(
            options, model=model or options.model, trust_remote_code=trust_remote_code or options.trust_remote_code
        )
    before = load_snapshot(golden.model_json)
    files = build_report_files(options, progress=progress, use_cache=use_cache)
    fresh = json.loads(files["model.json"].decode("utf-8"))
    after = snapshot_from_mapping(fresh, label="regenerated")
    if "report.yaml" in files and before.facts.keys() - {"model", "source revision", "workload"}:
        after = with_report_yaml(after, yaml.safe_load(files["report.yaml"].decode("utf-8")))
    return CheckResult(
        golden=evolve(golden, options=options),
        fresh_report_id=fresh.get("report_id") if isinstance(fresh, Mapping) else None,
        diff=diff_snapshots(before, after, tolerance=tolerance, counts_only=counts_only),
        files=files,
    )
