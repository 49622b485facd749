"""The HTTP service implementing ``contracts/openapi.yaml`` (Starlette + uvicorn) over the shared report store.

Start it with ``llm-perf-opt serve``; build an app in code with :func:`create_app`.
"""

from llm_perf_opt.service.app import DEFAULT_MAX_BODY_BYTES, create_app, openapi_bytes
from llm_perf_opt.service.backend import REMOTE_CODE_PREFIXES, BuildBackend, check_trust, pipeline_backend
from llm_perf_opt.service.builds import BuildLimits
from llm_perf_opt.service.server import ServeOptions, serve_app

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "REMOTE_CODE_PREFIXES",
    "BuildBackend",
    "BuildLimits",
    "ServeOptions",
    "check_trust",
    "create_app",
    "openapi_bytes",
    "pipeline_backend",
    "serve_app",
]
