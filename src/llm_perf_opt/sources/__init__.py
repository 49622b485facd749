"""Module trees the tracer runs: the built-in DeepSeek-OCR v1 (base and tiny), and their meta input builders.

Resolve a source by name with :func:`resolve_model_source`; see :mod:`llm_perf_opt.sources.registry`.
"""

from llm_perf_opt.sources.registry import (
    DEFAULT_MODEL_SOURCE,
    ModelSource,
    known_model_sources,
    register_scheme,
    register_source,
    resolve_model_source,
)
from llm_perf_opt.sources.upstream.register import register_upstream_sources

register_upstream_sources()

__all__ = [
    "DEFAULT_MODEL_SOURCE",
    "ModelSource",
    "known_model_sources",
    "register_scheme",
    "register_source",
    "resolve_model_source",
]
