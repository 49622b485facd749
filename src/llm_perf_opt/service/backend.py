"""What the service builds with: the analysis pipeline by default, or another backend given to the app factory.

A :class:`BuildBackend` is three callables: request -> options, options -> report id, options -> report files.
``build`` runs in a worker process, so it and the options it receives must be picklable (module-level functions and
attrs classes are).  The default backend computes options and report ids with the torch-free
:mod:`llm_perf_opt.analysis.options` and builds with :mod:`llm_perf_opt.report.files` (the analysis and its
rendering, torch), imported only when first used, so the service starts (and its tests run) without torch being
imported in the server process until a request arrives.
Tests pass their own backend to :func:`~llm_perf_opt.service.create_app`; the server never imports a backend
named at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from attrs import frozen

from llm_perf_opt.admission import inline_routing_text
from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest
from llm_perf_opt.errors import TrustError

__all__ = ["REMOTE_CODE_PREFIXES", "BuildBackend", "check_trust", "pipeline_backend"]

#: ``model_variant`` prefixes that name model sources whose code comes from outside this package.
REMOTE_CODE_PREFIXES = ("hf:", "hf-snapshot:")

_OPTIONS = "llm_perf_opt.analysis.options"
_PIPELINE = "llm_perf_opt.report.files"


@frozen(kw_only=True)
class BuildBackend:
    """How a request becomes a report: ``options_for``, ``report_id_for`` run in the server, ``build`` in a worker."""

    name: str
    options_for: Callable[[DeepSeekOCRAnalyticRequest, bool], Any]  # (request, allow_remote_code) -> options
    report_id_for: Callable[[Any], str]
    build: Callable[[Any], Mapping[str, bytes]]
    #: optional warm-up run once in the server and in each worker at start (e.g. import torch and the pipeline)
    prepare: Callable[[], None] | None = None


def check_trust(request: DeepSeekOCRAnalyticRequest, *, allow_remote_code: bool) -> None:
    """Refuse model sources that would run remote code unless the server was started with ``--allow-remote-code``."""
    variant = request.model_variant.strip().lower()
    if not allow_remote_code and variant.startswith(REMOTE_CODE_PREFIXES):
        raise TrustError(
            f"model_variant {request.model_variant!r} runs code from outside this package and this server does not "
            "allow it; expected a built-in variant (e.g. deepseek-ocr-v1-base); fix: use one, or restart the server "
            "with `llm-perf-opt serve --allow-remote-code`"
        )


def _pipeline() -> Any:
    return importlib.import_module(_PIPELINE)


def _pipeline_import() -> None:
    _pipeline()


def _pipeline_options(request: DeepSeekOCRAnalyticRequest, allow_remote_code: bool) -> Any:
    histogram = request.routing_histogram
    if histogram is not None:  # the counts travel inline as routing text; the analysis never opens a file for them
        request = attrs.evolve(request, routing=None, routing_histogram=None)
    options = importlib.import_module(_OPTIONS).options_from_request(request)
    if histogram is not None:
        options = attrs.evolve(options, routing=inline_routing_text(histogram))
    # The server's --allow-remote-code is the trust decision; pass it on when the options can carry it.
    if allow_remote_code and attrs.has(type(options)) and "trust_remote_code" in attrs.fields_dict(type(options)):
        options = attrs.evolve(options, trust_remote_code=True)
    return options


def _pipeline_report_id(options: Any) -> str:
    return str(importlib.import_module(_OPTIONS).report_id_for(options))


def _pipeline_build(options: Any) -> Mapping[str, bytes]:
    # new shapes get their batch basis kept by a background process, as analyze's do: the next batch is derived
    files: Mapping[str, bytes] = _pipeline().build_report_files(options, prepare_batches=True)
    return files


def pipeline_backend() -> BuildBackend:
    """The real analysis (``llm_perf_opt.analysis``, ``llm_perf_opt.report.files``), imported on first use."""
    return BuildBackend(
        name=_PIPELINE,
        options_for=_pipeline_options,
        report_id_for=_pipeline_report_id,
        build=_pipeline_build,
        prepare=_pipeline_import,
    )
