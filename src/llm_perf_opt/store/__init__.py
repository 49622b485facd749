"""The on-disk report store shared by the CLI (``analyze --store``) and the HTTP service (torch-free)."""

from llm_perf_opt.store.store import (
    MANIFEST_NAME,
    REPORT_ID_PATTERN,
    JobRecord,
    JobStatus,
    ReportDamagedError,
    ReportIdError,
    ReportNotFoundError,
    ReportStore,
    check_report_id,
)

__all__ = [
    "MANIFEST_NAME",
    "REPORT_ID_PATTERN",
    "JobRecord",
    "JobStatus",
    "ReportDamagedError",
    "ReportIdError",
    "ReportNotFoundError",
    "ReportStore",
    "check_report_id",
]
