"""The application layer: one request's journey, from options to one :class:`AnalysisResult`.

* :mod:`~llm_perf_opt.analysis.options` (torch-free): :class:`AnalysisOptions`, the one request shape behind the CLI
  and the HTTP request (:func:`options_from_request`), the report id (:func:`report_id_for`), the workload, device
  and routing the options resolve to.
* :mod:`~llm_perf_opt.analysis.pipeline` (torch): :func:`~llm_perf_opt.analysis.pipeline.run_analysis`, the whole
  journey in one function - resolve the source and trust, the workload, trace, compose the analytic model, validate,
  time - returning one :class:`AnalysisResult`.
* :mod:`~llm_perf_opt.analysis.model_source`: what the journey needs per kind of model source (trust gate,
  attention kernels, workload, analytic model, model spec, provenance).
* :mod:`~llm_perf_opt.analysis.validation`, :mod:`~llm_perf_opt.analysis.assemble`: analytic vs traced node by node;
  the ``model.json``/``summary.json`` contracts.
* :mod:`~llm_perf_opt.analysis.pinned`: pinned goldens of upstream code, re-traced and compared.

This package imports torch only through ``pipeline``, ``model_source`` and ``pinned``; importing it (or ``options``,
``result``) leaves torch unloaded, so the HTTP server computes report ids without it.  ``report`` renders a result
into files (:mod:`llm_perf_opt.report.files`); the CLI and the service call both.
"""

from llm_perf_opt.analysis.options import (
    AnalysisOptions,
    default_attention,
    options_from_request,
    report_id_for,
    resolve_workload,
)
from llm_perf_opt.analysis.result import AnalysisResult

__all__ = [
    "AnalysisOptions",
    "AnalysisResult",
    "default_attention",
    "options_from_request",
    "report_id_for",
    "resolve_workload",
]
