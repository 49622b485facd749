"""Running the app under uvicorn: structured, timestamped logs, a header-read timeout, a clean stop on SIGINT/SIGTERM.

uvicorn handles both signals: it stops accepting connections, lets requests in flight finish (at most
``graceful_s``), then runs the app's shutdown, which terminates the build workers and records their jobs as
interrupted.  A connection that has not sent its request headers within ``header_timeout_s`` is closed (a client
that trickles headers cannot hold a connection open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from attrs import frozen
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["LOG_FORMAT", "ServeOptions", "serve_app"]

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s"


@frozen(kw_only=True)
class ServeOptions:
    """Where and how to listen."""

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    header_timeout_s: float = 10.0
    graceful_s: int = 3


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers take longer than ``header_timeout_s``."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logging.getLogger("llm_perf_opt.service").warning("event=header_timeout client=%s", self.client)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle:
            self._arm()
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a complete request head arrived
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def serve_app(app: Starlette, options: ServeOptions) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    # lazy: the serve extra (uvicorn) loads only when the server starts
    import uvicorn

    logging.basicConfig(format=LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S", level=options.log_level.upper())
    logging.Formatter.converter = time.gmtime
    protocol = type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout_s": options.header_timeout_s})
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        http=protocol,
        timeout_graceful_shutdown=options.graceful_s,
        log_config=None,
    )
