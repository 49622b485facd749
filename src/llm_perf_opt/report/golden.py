"""Golden reports for CI: find a golden's ``model.json`` and the options that made it, regenerate, and compare.

A golden is a report folder written by ``analyze`` (or the path of its ``model.json``); ``options.json`` beside
``model.json`` holds the :class:`AnalysisOptions` (model source, workload and overrides, device, dtype, attention,
routing) that produced it.  :func:`check_golden` runs the same analysis again and diffs the fresh ``model.json``
against the golden one: any moved node or cost beyond the tolerance is a difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import fields, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import DEFAULT_TOLERANCE, ReportDiff, diff_snapshots, load_snapshot, snapshot_from_mapping
from llm_perf_opt.report.options import AnalysisOptions

__all__ = ["CheckResult", "Golden", "check_golden", "load_golden", "options_from_payload"]

_OPTION_FIELDS = tuple(a.name for a in fields(AnalysisOptions))


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


def options_from_payload(payload: Any, *, base: Path) -> AnalysisOptions:
    """:class:`AnalysisOptions` from ``options.json`` (its fields as JSON; files resolved beside the golden)."""
    data = payload.get("options", payload) if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        raise UserError("options.json must hold a JSON object of analysis options")
    unknown = sorted(set(data) - set(_OPTION_FIELDS))
    if unknown:
        raise UserError(
            f"options.json has unknown key(s) {', '.join(unknown)}; expected some of {', '.join(_OPTION_FIELDS)}"
        )
    values = dict(data)
    for key in ("measured", "device_profile"):
        if values.get(key) is not None:
            values[key] = _resolve_file(values[key], key, base)
    if values.get("page") is not None:
        page = values["page"]
        if not (isinstance(page, list | tuple) and len(page) == 2 and all(isinstance(v, int) for v in page)):
            raise UserError(f"options.json page must be [width, height] in pixels, got {page!r}")
    try:
        return AnalysisOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"options.json does not describe an analysis: {exc}") from None


def _resolve_file(value: Any, key: str, base: Path) -> str:
    if not isinstance(value, str):
        raise UserError(f"options.json {key} must be a file path, got {value!r}")
    candidates = [Path(value), base / value, base / Path(value).name]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise UserError(f"options.json names {key} file {value!r}, which is neither where it says nor beside the golden")


def check_golden(
    path: str | Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: Any = None,
) -> CheckResult:
    """Regenerate the report ``path`` describes and diff its ``model.json`` against the golden's."""
    from llm_perf_opt.report.pipeline import build_report_files

    golden = load_golden(path)
    before = load_snapshot(golden.model_json)
    files = build_report_files(golden.options, progress=progress)
    fresh = json.loads(files["model.json"].decode("utf-8"))
    after = snapshot_from_mapping(fresh, label="regenerated")
    return CheckResult(
        golden=golden,
        fresh_report_id=fresh.get("report_id") if isinstance(fresh, Mapping) else None,
        diff=diff_snapshots(before, after, tolerance=tolerance),
        files=files,
    )
