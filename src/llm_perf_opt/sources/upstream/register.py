"""Registration of the upstream model sources with :mod:`llm_perf_opt.sources.registry`.

``hf-snapshot:PATH`` and ``hf:REPO@REVISION`` (schemes) and ``deepseek-ocr-2`` (a name).  :mod:`llm_perf_opt.sources`
calls :func:`register_upstream_sources` when the package is imported; the registry itself knows nothing of them.
Resolving reads and hashes files only: no remote code runs and transformers is not imported until a tree is built.
"""

from __future__ import annotations

from llm_perf_opt.sources.registry import ModelSource, register_scheme, register_source

__all__ = ["register_upstream_sources"]

# The resolvers import their modules when first used (lazy: those modules import torch, and resolving a built-in
# source - all an analysis served from the trace cache does - must not).


def _snapshot(name: str) -> ModelSource:
    # lazy: torch (see above)
    from llm_perf_opt.sources.upstream.source import resolve_snapshot

    return resolve_snapshot(name)


def _hub(name: str) -> ModelSource:
    # lazy: torch (see above)
    from llm_perf_opt.sources.upstream.source import resolve_hub

    return resolve_hub(name)


def _ocr2() -> ModelSource:
    # lazy: torch (see above)
    from llm_perf_opt.sources.deepseek_ocr2.source import deepseek_ocr2_source

    return deepseek_ocr2_source()


def register_upstream_sources() -> None:
    """Register ``hf-snapshot:``, ``hf:`` and ``deepseek-ocr-2`` (idempotent)."""
    register_scheme("hf-snapshot", _snapshot)
    register_scheme("hf", _hub)
    register_source("deepseek-ocr-2", _ocr2)
