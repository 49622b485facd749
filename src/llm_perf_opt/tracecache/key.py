"""The cache key of a trace: sha256 of a canonical JSON object of everything that decides the trace.

The caller names the parts (source name, config, workload shapes, attention, routing, ...); :func:`trace_key` adds
:data:`TRACER_VERSION` and hashes them.  :func:`code_hash` hashes the files of the packages that build and trace the
model, so editing any of them invalidates every entry traced with the old code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import llm_perf_opt
from llm_perf_opt.contracts.converter import converter

__all__ = ["TRACED_CODE", "TRACER_VERSION", "code_hash", "trace_key", "trace_key_parts"]

TRACER_VERSION = 1
"""Bumped when a cached trace of unchanged code would no longer be what the tracer returns (format changes)."""

_PACKAGE_ROOT = Path(llm_perf_opt.__file__).resolve().parent

TRACED_CODE = ("sources", "tracer", "config", "workloads", "core")
"""Packages (under ``llm_perf_opt``) whose files decide what a trace returns: the model builders and drivers, the
tracer, configs, workloads and the cost arithmetic."""


_PAGE_FIELDS = ("page_width", "page_height", "page")
"""Workload fields of the page size (v1 ``Workload``, ``Ocr2Workload``)."""


def trace_key_parts(
    source: Any, workload: Any, *, attention: str, routing: Any, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The key parts of tracing ``workload`` (attrs) on ``source`` (``name``, ``config``, optional ``kind``) with
    ``attention`` and ``routing`` (attrs); ``extra`` adds what else decides the trace (remote code fingerprints, the
    decoder attention a tree was built with).  A workload's preset name is left out: it does not change the trace;
    nor is its page size, only the tile grid the page is cut into (two pages of one grid trace the same shapes: the
    cached trace's ``workload`` line names the page it was traced with, and ``analysis.trace_step`` restates it)."""
    shapes = converter.unstructure(workload)
    shapes.pop("profile_id", None)
    for side in _PAGE_FIELDS:  # the page decides a trace only through its tile grid
        shapes.pop(side, None)
    grid = getattr(workload, "grid", None)
    if grid is not None and not getattr(workload, "text_only", False):
        shapes["grid"] = list(grid)
    parts: dict[str, Any] = {
        "source": source.name,
        "kind": str(getattr(source, "kind", "builtin-v1")),
        "code": code_hash(TRACED_CODE),
        "config": converter.unstructure(source.config),
        "workload": {"type": type(workload).__name__, **shapes},
        "attention": attention,
        "routing": converter.unstructure(routing),
    }
    if extra:
        parts["extra"] = dict(extra)
    return parts


def trace_key(parts: Mapping[str, Any]) -> str:
    """Hex sha256 of ``parts`` and the tracer version (``parts`` JSON-able: str, int, float, bool, None, lists and
    str-keyed dicts; key order does not matter)."""
    payload = {"tracer_version": TRACER_VERSION, **parts}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def code_hash(packages: Iterable[str]) -> str:
    """Hex sha256 over the files of ``packages`` (paths under ``llm_perf_opt``, e.g. ``"tracer"`` or
    ``"sources/deepseek_ocr_v1"``; a single ``.py`` file also works): relative path and bytes of every file, in
    sorted order, caches (``__pycache__``) left out.  Read from disk, never imported."""
    return _code_hash(tuple(sorted(set(packages))))


@cache
def _code_hash(packages: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for package in packages:
        root = _PACKAGE_ROOT / package
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(_PACKAGE_ROOT).as_posix().encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
