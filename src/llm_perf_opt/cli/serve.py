"""``llm-perf-opt serve``: the HTTP service of ``contracts/openapi.yaml`` (see docs/service.md)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from llm_perf_opt.errors import UserError

__all__ = ["serve"]

#: Test-only: "module:attribute" of a BuildBackend to use instead of the analysis pipeline (docs/service.md).
TEST_BACKEND_ENV = "LLM_PERF_OPT_SERVE_TEST_BACKEND"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port (0: any).")
@click.option(
    "--store",
    "store_dir",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report store folder, shared with `analyze --store`.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Builds that run at once, each in its own worker process.",
)
@click.option(
    "--allow-remote-code",
    is_flag=True,
    help="Accept hf: and hf-snapshot: model sources, whose Python code this server will execute.",
)
@click.option(
    "--max-body-bytes", default=64 * 1024, show_default=True, type=click.IntRange(256), help="Request size limit."
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"]))
def serve(
    host: str,
    port: int,
    store_dir: Path,
    workers: int,
    allow_remote_code: bool,
    max_body_bytes: int,
    log_level: str,
) -> None:
    """Serve POST /analytic/deepseek-ocr/run and the report GETs of openapi.yaml (GET /openapi.yaml, GET /health).

    Listens on loopback unless --host says otherwise; there is no authentication, so put a proxy in front before
    exposing it.
    """
    # lazy: the serve extra (uvicorn, starlette) loads only when the server starts
    import uvicorn

    # lazy: the serve extra (uvicorn, starlette) loads only when the server starts
    from llm_perf_opt.service import create_app, load_backend

    if not _is_loopback(host):
        click.echo(f"warning: listening on {host}, reachable from other machines; there is no authentication", err=True)
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create store folder {str(store_dir)!r}: {exc.strerror}; expected a writable path"
        ) from exc
    spec = os.environ.get(TEST_BACKEND_ENV)
    app = create_app(
        store_root=store_dir,
        workers=workers,
        allow_remote_code=allow_remote_code,
        backend=load_backend(spec) if spec else None,
        max_body_bytes=max_body_bytes,
    )
    click.echo(f"serving store {store_dir} on http://{host}:{port} ({workers} build workers)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
