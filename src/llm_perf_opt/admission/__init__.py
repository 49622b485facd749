"""Admission: every request and every CLI flag checked at the door, before anything is queued or traced (torch-free).

One validator behind both doors: :func:`check_request` (the HTTP request, called by the service) and
:func:`check_analysis_flags` / :func:`check_sweep_flags` / :func:`check_model_source_flag` (the CLI).  A violation
is one :class:`AdmissionError` naming the field (``path``: a JSON path such as ``$.batch_size``, or a flag such as
``--batch``), the bound and the fix.  The bounds are named constants in :mod:`llm_perf_opt.admission.limits`.
"""

from llm_perf_opt.admission import limits
from llm_perf_opt.admission.check import (
    AdmissionError,
    check_analysis_flags,
    check_model_source_flag,
    check_request,
    check_snapshot_path,
    check_sweep_flags,
    inline_routing_text,
)
from llm_perf_opt.admission.schema import constrained_request_schema, json_depth

__all__ = [
    "AdmissionError",
    "check_analysis_flags",
    "check_model_source_flag",
    "check_request",
    "check_snapshot_path",
    "check_sweep_flags",
    "constrained_request_schema",
    "inline_routing_text",
    "json_depth",
    "limits",
]
