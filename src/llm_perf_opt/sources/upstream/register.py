"""Registration of the upstream model sources with :mod:`llm_perf_opt.sources.registry`.

``hf-snapshot:PATH`` and ``hf:REPO@REVISION`` (schemes) and ``deepseek-ocr-2`` (a name).  The resolvers import their
modules on first use, so importing the registry stays cheap.
"""

from __future__ import annotations

from llm_perf_opt.sources.registry import ModelSource, register_scheme, register_source

__all__ = ["register_upstream_sources"]


def _snapshot(name: str) -> ModelSource:
    from llm_perf_opt.sources.upstream.source import resolve_snapshot

    return resolve_snapshot(name)


def _hub(name: str) -> ModelSource:
    from llm_perf_opt.sources.upstream.source import resolve_hub

    return resolve_hub(name)


def _ocr2() -> ModelSource:
    from llm_perf_opt.sources.deepseek_ocr2.source import deepseek_ocr2_source

    return deepseek_ocr2_source()


def register_upstream_sources() -> None:
    """Register ``hf-snapshot:``, ``hf:`` and ``deepseek-ocr-2`` (idempotent)."""
    register_scheme("hf-snapshot", _snapshot)
    register_scheme("hf", _hub)
    register_source("deepseek-ocr-2", _ocr2)
