"""The HTTP service implementing ``contracts/openapi.yaml`` (Starlette + uvicorn) over the shared report store.

Start it with ``llm-perf-opt serve``; build an app in code with :func:`create_app`.
"""

from llm_perf_opt.service.app import DEFAULT_MAX_BODY_BYTES, create_app, openapi_bytes
from llm_perf_opt.service.backend import REMOTE_CODE_PREFIXES, BuildBackend, check_trust, load_backend, pipeline_backend

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "REMOTE_CODE_PREFIXES",
    "BuildBackend",
    "check_trust",
    "create_app",
    "load_backend",
    "openapi_bytes",
    "pipeline_backend",
]
