"""Golden reports for CI: find a golden's ``model.json`` and the options that made it, regenerate, and compare.

Two kinds of golden:

* a **report golden**: a report folder written by ``analyze`` (or the path of its ``model.json``); ``options.json``
  beside ``model.json`` holds the :class:`AnalysisOptions` (model source, workload and overrides, device, dtype,
  attention, routing) that produced it.  :func:`check_golden` runs the same analysis again (optionally with another
  model source) and diffs the fresh ``model.json`` against the golden one: any moved node or cost beyond the
  tolerance is a difference.
* a **pinned golden** (``third_party/<repo>/<revision>/``): ``golden/*.json`` traced trees
  (``llm-perf-opt-golden/1``, :mod:`llm_perf_opt.sources.upstream.golden`) and ``code_hashes.json``.
  :func:`check_pinned` re-traces each golden's workload on the model source (the one recorded in the goldens, or
  another) and compares every node's class, stage, parent, repetition, calls, weight and KV bytes and every counter
  exactly; remote-code files whose sha256 moved are listed.  A single golden file checks that workload only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from attrs import evolve, fields, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.report.diff import (
    DEFAULT_TOLERANCE,
    ReportDiff,
    diff_snapshots,
    load_snapshot,
    snapshot_from_mapping,
    with_report_yaml,
)
from llm_perf_opt.report.options import AnalysisOptions

__all__ = [
    "CheckResult",
    "Golden",
    "check_golden",
    "check_pinned",
    "is_pinned_golden",
    "load_golden",
    "options_from_payload",
]

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
    model: str | None = None,
    trust_remote_code: bool = False,
    counts_only: bool = False,
) -> CheckResult:
    """Regenerate the report ``path`` describes and diff its ``model.json`` against the golden's.

    ``model`` re-runs the golden's options with another model source (e.g. a new ``hf:REPO@REV``);
    ``trust_remote_code`` allows a remote-code source to run.
    """
    from llm_perf_opt.report.pipeline import build_report_files

    golden = load_golden(path)
    options = golden.options
    if model is not None or trust_remote_code:
        options = evolve(
            options, model=model or options.model, trust_remote_code=trust_remote_code or options.trust_remote_code
        )
    before = load_snapshot(golden.model_json)
    files = build_report_files(options, progress=progress)
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


def is_pinned_golden(path: str | Path) -> bool:
    """Whether ``path`` is a pinned golden: a folder with ``golden/*.json`` (and no ``model.json``), or one
    ``llm-perf-opt-golden/1`` file."""
    p = Path(path)
    if p.is_dir():
        return not (p / "model.json").is_file() and any((p / "golden").glob("*.json"))
    if p.is_file() and p.suffix == ".json" and p.name != "model.json":
        try:
            head = p.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            return False
        return '"format": "llm-perf-opt-golden/1"' in head
    return False


def check_pinned(
    path: str | Path,
    *,
    model: str | None = None,
    trust_remote_code: bool = False,
    progress: Any = None,
    counts_only: bool = False,
) -> Any:
    """Re-trace the workloads of a pinned golden (folder or one golden file) on ``model`` (default: the source the
    goldens were traced from) and compare: a :class:`~llm_perf_opt.sources.upstream.drift.DriftResult`."""
    from llm_perf_opt.sources.upstream.drift import check_traces, recorded_model

    p = Path(path)
    folder, names = (p, None) if p.is_dir() else (p.parent.parent if p.parent.name == "golden" else p.parent, [p.stem])
    if p.is_file() and p.parent.name != "golden":
        raise UserError(f"golden file {p} must sit in a golden/ folder of a pinned revision (third_party/.../golden/)")
    chosen = model or recorded_model(folder)
    if model is None:
        _check_recorded_source(chosen, folder)
    return check_traces(
        chosen, folder, trust=trust_remote_code, names=names, progress=progress, counts_only=counts_only
    )


def _check_recorded_source(model: str, folder: Path) -> None:
    """The goldens' own source must be on this machine; say how to prepare it (or what to pass instead) if not."""
    if not model.startswith("hf-snapshot:"):
        return
    snapshot = Path(model.removeprefix("hf-snapshot:"))
    if snapshot.is_dir():
        return
    raise UserError(
        f"the goldens in {folder} were traced from {model}, which is not on this machine; prepare it by putting the "
        f"remote-code files and config.json of the pinned revision (listed with their sha256 in "
        f"{folder / 'code_hashes.json'}, sources in {folder / 'SOURCE.md'}) into {snapshot}, or pass "
        f"--model hf:deepseek-ai/DeepSeek-OCR@{folder.name} --trust-remote-code (Hub access, see docs/upstream.md), "
        "or --model deepseek-ocr-v1-base --counts-only to check the built-in model against these goldens"
    )
