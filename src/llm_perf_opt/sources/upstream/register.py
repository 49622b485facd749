"""Registration of the upstream model sources with :mod:`llm_perf_opt.sources.registry`.

``hf-snapshot:PATH`` and ``hf:REPO@REVISION`` (schemes) and ``deepseek-ocr-2`` (a name).  :mod:`llm_perf_opt.sources`
calls :func:`register_upstream_sources` when the package is imported; the registry itself knows nothing of them.
Resolving reads and hashes files only: no remote code runs and transformers is not imported until a tree is built.
"""

from __future__ import annotations

from llm_perf_opt.sources.deepseek_ocr2.source import deepseek_ocr2_source
from llm_perf_opt.sources.registry import register_scheme, register_source
from llm_perf_opt.sources.upstream.source import resolve_hub, resolve_snapshot

__all__ = ["register_upstream_sources"]


def register_upstream_sources() -> None:
    """Register ``hf-snapshot:``, ``hf:`` and ``deepseek-ocr-2`` (idempotent)."""
    register_scheme("hf-snapshot", resolve_snapshot)
    register_scheme("hf", resolve_hub)
    register_source("deepseek-ocr-2", deepseek_ocr2_source)
