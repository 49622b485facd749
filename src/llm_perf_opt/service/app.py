"""The HTTP service: Starlette routes implementing ``contracts/openapi.yaml`` over the report store.

``POST /analytic/deepseek-ocr/run`` checks the request (:mod:`llm_perf_opt.admission`: 422 before anything is
queued), answers 200 with the summary when the report exists (and ``force_rebuild`` is false), else 202
``{report_id, status, stage, queue_position}`` once the job is on disk (503 when the store cannot record it) and
builds in the background; ``GET .../{report_id}/summary|model`` answers 200 with the stored JSON, 409 (with
``Retry-After``) while it builds, 500 with the reason when the build failed, 404 for an unknown or malformed id;
``GET .../reports`` lists reports (paged) and ``DELETE .../{report_id}`` removes one.  Every error body is an
``ErrorResponse`` ``{error, path}`` whose text never holds a traceback, a C++ frame or a server path.  Bodies go
through the project's cattrs converter, so the wire format is the contract classes' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib.resources
import json
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llm_perf_opt import __version__
from llm_perf_opt.admission import check_request, json_depth, limits
from llm_perf_opt.contracts import (
    DeepSeekOCRAnalyticAccepted,
    DeepSeekOCRAnalyticModel,
    DeepSeekOCRAnalyticReportSummary,
    DeepSeekOCRAnalyticRequest,
    ErrorResponse,
    ReportList,
    ReportListEntry,
    from_json,
    to_json,
    unstructure,
)
from llm_perf_opt.errors import ContractError, TrustError, UnknownIdError, UserError
from llm_perf_opt.service.backend import BuildBackend, pipeline_backend
from llm_perf_opt.service.builds import (
    BuildLimits,
    BuildManager,
    ServiceBusyError,
    StoreUnavailableError,
    public_text,
)
from llm_perf_opt.store import (
    ReportDamagedError,
    ReportIdError,
    ReportNotFoundError,
    ReportStore,
    check_report_id,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "openapi_bytes"]

log = logging.getLogger("llm_perf_opt.service")

DEFAULT_MAX_BODY_BYTES = 64 * 1024
_JSON = "application/json"
_BASE = "/analytic/deepseek-ocr"
# UnknownIdError.kind -> the request field that names it, so a 422 points at the field.
_ID_FIELDS = {
    "model": "model_variant",
    "variant": "model_variant",
    "workload": "workload_profile_id",
    "profile": "workload_profile_id",
    "device": "device",
    "mode": "mode",
    "dtype": "dtype",
    "routing": "routing",
    "attention": "attention",
}


class _BodyTooLargeError(Exception):
    pass


def openapi_bytes() -> bytes:
    """The shipped ``openapi.yaml``, byte for byte."""
    return importlib.resources.files("llm_perf_opt.contracts").joinpath("openapi.yaml").read_bytes()


def _json(obj: Any, status_code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(obj).encode("utf-8"), status_code=status_code, media_type=_JSON, headers=headers)


def _error(status_code: int, message: str, path: str, headers: dict[str, str] | None = None) -> Response:
    return _json(ErrorResponse(error=public_text(message), path=public_text(path)[:200]), status_code, headers)


def _user_error_path(exc: UserError) -> str:
    if isinstance(exc, ContractError):
        return exc.path
    if isinstance(exc, TrustError):
        return "$.model_variant"
    if isinstance(exc, UnknownIdError):
        kind = exc.kind.lower()
        for word, name in _ID_FIELDS.items():
            if word in kind:
                return f"$.{name}"
    return "$"


def _load_checked(store: ReportStore, report_id: str, name: str, cls: type) -> bytes:
    """Stored bytes of one report file, after the manifest check and a strict parse into its contract class."""
    data = store.read(report_id, name)
    from_json(data, cls)
    return data


class _Service:
    """Route handlers over one store and one build manager."""

    def __init__(
        self,
        *,
        store: ReportStore,
        manager: BuildManager,
        allow_remote_code: bool,
        max_body: int,
        snapshot_roots: Sequence[Path],
    ) -> None:
        self.store = store
        self.manager = manager
        self.allow_remote_code = allow_remote_code
        self.max_body = max_body
        self.snapshot_roots = tuple(snapshot_roots)
        self.openapi = openapi_bytes()

    async def openapi_yaml(self, request: Request) -> Response:
        return Response(self.openapi, media_type="application/yaml")

    async def health(self, request: Request) -> Response:
        doc = {
            "status": "ok",
            "version": __version__,
            "backend": self.manager.backend.name,
            "workers": self.manager.workers,
            "builds": self.manager.counts(),
            "totals": unstructure(self.manager.counters),
            "allow_remote_code": self.allow_remote_code,
        }
        return Response(json.dumps(doc, indent=2) + "\n", media_type=_JSON)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _BodyTooLargeError
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _BodyTooLargeError
            chunks.append(chunk)
        return b"".join(chunks)

    def _options(self, req: DeepSeekOCRAnalyticRequest) -> tuple[Any, str]:
        check_request(req, allow_remote_code=self.allow_remote_code, snapshot_roots=self.snapshot_roots)
        backend = self.manager.backend
        options = backend.options_for(req, self.allow_remote_code)
        return options, check_report_id(backend.report_id_for(options))

    async def run(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            if json_depth(body) > limits.MAX_JSON_DEPTH:
                message = f"request body nested deeper than {limits.MAX_JSON_DEPTH} levels; expected a flat JSON object"
                return _error(422, message, "$")
            req = from_json(body, DeepSeekOCRAnalyticRequest)
            options, report_id = await asyncio.to_thread(self._options, req)
        except _BodyTooLargeError:
            return _error(413, f"request body over {self.max_body} bytes; expected a small JSON object", "$")
        except UserError as exc:
            return _error(422, str(exc), _user_error_path(exc))
        except RecursionError as exc:  # a body the JSON parser cannot take apart (json_depth should stop it first)
            return _error(422, f"request body is not a JSON object ({type(exc).__name__})", "$")
        replace = req.force_rebuild
        if not replace and self.manager.status(report_id) is None and self.store.exists(report_id):
            try:
                data = await asyncio.to_thread(
                    _load_checked, self.store, report_id, "summary.json", DeepSeekOCRAnalyticReportSummary
                )
                return Response(data, media_type=_JSON)
            except (ReportNotFoundError, ReportDamagedError, ContractError) as exc:
                log.warning("report %s is unreadable (%s); rebuilding it", report_id, exc)
                replace = True
        try:
            await self.manager.submit(report_id, options, unstructure(req), replace=replace)
        except ServiceBusyError as exc:
            return _error(503, f"{exc}; retry later", "$", {"Retry-After": "5"})
        except StoreUnavailableError as exc:
            return _error(
                503, f"{exc}; nothing was queued, retry once the store is writable", "$", {"Retry-After": "30"}
            )
        return _json(self._accepted(report_id), 202)

    def _accepted(self, report_id: str, status: Any = "queued") -> DeepSeekOCRAnalyticAccepted:
        live = self.manager.status(report_id)
        progress = self.manager.progress(report_id)
        if live is None or progress is None:  # finished meanwhile, or built by another server
            return DeepSeekOCRAnalyticAccepted(report_id=report_id, status=live or status)
        stage, position = progress
        return DeepSeekOCRAnalyticAccepted(report_id=report_id, status=live, stage=stage, queue_position=position)

    async def list_reports(self, request: Request) -> Response:
        try:
            offset = _query_int(request, "offset", 0, 0, 10**9)
            limit = _query_int(request, "limit", 50, 1, 200)
        except ValueError as exc:
            return _error(422, str(exc), str(exc).split(" ", 1)[0])
        entries = await asyncio.to_thread(self._entries)
        page = ReportList(reports=entries[offset : offset + limit], total=len(entries), offset=offset, limit=limit)
        return _json(page, 200)

    def _entries(self) -> list[ReportListEntry]:
        found: dict[str, ReportListEntry] = {
            report_id: ReportListEntry(report_id=report_id, status="published")
            for report_id in self.store.list_reports()
        }
        for record in self.store.jobs():
            if record.report_id not in found:
                reason = public_text(record.reason) if record.reason else None
                found[record.report_id] = ReportListEntry(
                    report_id=record.report_id, status=record.status, reason=reason
                )
        for report_id, status in self.manager.active().items():
            found[report_id] = ReportListEntry(report_id=report_id, status=status)
        return [found[report_id] for report_id in sorted(found)]

    async def delete(self, request: Request) -> Response:
        report_id = request.path_params["report_id"]
        try:
            check_report_id(report_id)
        except ReportIdError as exc:
            return _error(404, f"unknown report: {exc}", "report_id")
        if self.manager.status(report_id) is not None:
            return self._not_ready(report_id, self.manager.status(report_id))
        deleted = await asyncio.to_thread(self.store.delete, report_id)
        record = await asyncio.to_thread(self.store.job, report_id)
        if record is not None and record.status != "failed":  # another server builds it
            return self._not_ready(report_id, record.status)
        if record is not None:
            await asyncio.to_thread(self.store.clear_job, report_id)
        if not deleted and record is None:
            return _error(404, f"no report {report_id!r}; nothing to delete", "report_id")
        log.info("event=report_deleted report_id=%s", report_id)
        return Response(status_code=204)

    async def summary(self, request: Request) -> Response:
        return await self._report_file(request, "summary.json", DeepSeekOCRAnalyticReportSummary)

    async def model(self, request: Request) -> Response:
        return await self._report_file(request, "model.json", DeepSeekOCRAnalyticModel)

    async def _report_file(self, request: Request, name: str, cls: type) -> Response:
        report_id = request.path_params["report_id"]
        try:
            check_report_id(report_id)
        except ReportIdError as exc:
            return _error(404, f"unknown report: {exc}", "report_id")
        status = self.manager.status(report_id)
        if status is not None:
            return self._not_ready(report_id, status)
        try:
            data = await asyncio.to_thread(_load_checked, self.store, report_id, name, cls)
        except ReportNotFoundError:
            return await self._not_built(report_id)
        except (ReportDamagedError, ContractError) as exc:
            log.error("report %s cannot be served: %s", report_id, exc)
            message = f"stored report is damaged ({exc}); POST the request with force_rebuild true to rebuild it"
            return _error(500, message, "report_id")
        return Response(data, media_type=_JSON)

    def _not_ready(self, report_id: str, status: Any) -> Response:
        return _json(self._accepted(report_id, status), 409, {"Retry-After": "1"})

    async def _not_built(self, report_id: str) -> Response:
        record = await asyncio.to_thread(self.store.job, report_id)
        if record is None:
            message = f"no report {report_id!r}; POST its request to {_BASE}/run first"
            return _error(404, message, "report_id")
        if record.status == "failed":
            return _error(500, record.reason or "build failed", "report_id")
        # queued or running by another server on the same store
        return self._not_ready(report_id, record.status)  # built by another process on the same store


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"{exc.detail} ({request.method} {request.url.path}); see GET /openapi.yaml for the API"
    return _error(exc.status_code, message, "$", dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    incident = secrets.token_hex(4)
    log.error(
        "event=request_error incident=%s method=%s path=%r", incident, request.method, request.url.path, exc_info=exc
    )
    return _error(500, f"internal error ({type(exc).__name__}); the server log has incident {incident}", "$")


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} {raw[:20]!r}: expected an integer in {low}..{high}")
    return int(raw)


class _BearerAuth:
    """``Authorization: Bearer <token>`` on every route but ``/health`` and ``/openapi.yaml`` (401 otherwise)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.token):
            response = _error(
                401,
                "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
                "$",
                {"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


_OPEN_PATHS = ("/health", "/openapi.yaml")


def create_app(
    *,
    store_root: Path | str,
    workers: int = 2,
    allow_remote_code: bool = False,
    backend: BuildBackend | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pending: int = 1024,
    limits: BuildLimits | None = None,
    snapshot_roots: Sequence[Path | str] = (),
    token: str | None = None,
    cors_origins: Sequence[str] = (),
) -> Starlette:
    """The ASGI app. ``backend`` defaults to the real analysis pipeline (tests pass their own); ``workers`` bounds
    concurrent builds, ``limits`` their time and memory; ``token`` turns on bearer auth, ``cors_origins`` CORS."""
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    store = ReportStore(store_root)
    manager = BuildManager(
        store=store, backend=backend or pipeline_backend(), workers=workers, max_pending=max_pending, limits=limits
    )
    service = _Service(
        store=store,
        manager=manager,
        allow_remote_code=allow_remote_code,
        max_body=max_body_bytes,
        snapshot_roots=[Path(root) for root in snapshot_roots],
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await manager.start()
        try:
            yield
        finally:
            await manager.stop()

    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/openapi.yaml", service.openapi_yaml, methods=["GET"]),
        Route(f"{_BASE}/run", service.run, methods=["POST"]),
        Route(f"{_BASE}/reports", service.list_reports, methods=["GET"]),
        Route(f"{_BASE}/{{report_id}}", service.delete, methods=["DELETE"]),
        Route(f"{_BASE}/{{report_id}}/summary", service.summary, methods=["GET"]),
        Route(f"{_BASE}/{{report_id}}/model", service.model, methods=["GET"]),
    ]
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type"],
            )
        )
    if token:
        middleware.append(Middleware(_BearerAuth, token=token))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.manager = manager
    app.state.store = store
    return app
