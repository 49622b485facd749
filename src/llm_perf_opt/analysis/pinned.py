"""Pinned goldens (``third_party/<repo>/<revision>/``): re-trace their workloads on a model source and compare.

A pinned golden holds ``golden/*.json`` traced trees (``llm-perf-opt-golden/1``,
:mod:`llm_perf_opt.tracer.golden`) and ``code_hashes.json``.  :func:`check_pinned` re-traces each golden's
workload on the model source (the one recorded in the goldens, or another) and compares every node's class, stage,
parent, repetition, calls, weight and KV bytes and every counter exactly; remote-code files whose sha256 moved are
listed.  A single golden file checks that workload only.  Report goldens (an ``analyze`` folder) are
:mod:`llm_perf_opt.report.golden`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llm_perf_opt.analysis.drift import DriftResult, check_traces, recorded_model
from llm_perf_opt.errors import UserError

__all__ = ["check_pinned", "is_pinned_golden"]


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
    progress: Callable[[str], None] | None = None,
    counts_only: bool = False,
) -> DriftResult:
    """Re-trace the workloads of a pinned golden (folder or one golden file) on ``model`` (default: the source the
    goldens were traced from) and compare: a :class:`~llm_perf_opt.analysis.drift.DriftResult`."""
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
