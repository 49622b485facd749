"""``llm-perf-opt serve``: the HTTP service of ``contracts/openapi.yaml`` (see docs/service.md).

The build backend is the analysis pipeline.  Tests run this same command with their own backend in the click
context object (``cli.main(args, obj={"backend": ...})``); nothing is ever imported by a name given at run time.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import click

from llm_perf_opt.errors import UserError

__all__ = ["serve"]

_MAX_TOKEN_FILE_BYTES = 4096


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
@click.option(
    "--snapshot-root",
    "snapshot_roots",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder whose hf-snapshot: sources clients may name (repeatable; with --allow-remote-code).",
)
@click.option(
    "--build-timeout-s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1.0, 86400.0),
    help="Wall-clock limit per build; the build fails and its worker is replaced.",
)
@click.option(
    "--build-memory-mb",
    default=8192,
    show_default=True,
    type=click.IntRange(0, 1 << 22),
    help="Address-space limit of each build worker (RLIMIT_AS), 0 for none.",
)
@click.option(
    "--failed-retention-s",
    default=7 * 24 * 3600.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Failed build records older than this are forgotten.",
)
@click.option(
    "--header-timeout-s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 600.0),
    help="Close connections whose request headers take longer.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Require 'Authorization: Bearer <token>' (the file's first line) on all but /health and /openapi.yaml.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Allow browser requests from this origin (repeatable, e.g. https://dash.example.org); none by default.",
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"]))
def serve(
    host: str,
    port: int,
    store_dir: Path,
    workers: int,
    allow_remote_code: bool,
    max_body_bytes: int,
    snapshot_roots: tuple[Path, ...],
    build_timeout_s: float,
    build_memory_mb: int,
    failed_retention_s: float,
    header_timeout_s: float,
    token_file: Path | None,
    cors_origins: tuple[str, ...],
    log_level: str,
) -> None:
    """Serve POST /analytic/deepseek-ocr/run and the report GETs of openapi.yaml (GET /openapi.yaml, GET /health).

    Listens on loopback unless --host says otherwise; without --token-file there is no authentication, so put a
    proxy in front (or set a token) before exposing it.  SIGINT/SIGTERM stop it within a few seconds.
    """
    # lazy: the serve extra (uvicorn, starlette) loads only when the server starts
    from llm_perf_opt.service import BuildLimits, ServeOptions, create_app, serve_app

    token = _read_token(token_file) if token_file is not None else None
    if not _is_loopback(host) and token is None:
        click.echo(f"warning: listening on {host}, reachable from other machines; there is no authentication", err=True)
    if snapshot_roots and not allow_remote_code:
        raise UserError("--snapshot-root needs --allow-remote-code (snapshots run their own Python code)")
    _check_port(host, port)
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create store folder {str(store_dir)!r}: {exc.strerror}; expected a writable path"
        ) from exc
    injected = (click.get_current_context().obj or {}).get("backend")  # tests only, through the context object
    app = create_app(
        store_root=store_dir,
        workers=workers,
        allow_remote_code=allow_remote_code,
        backend=injected,
        max_body_bytes=max_body_bytes,
        limits=BuildLimits(timeout_s=build_timeout_s, memory_mb=build_memory_mb, failed_retention_s=failed_retention_s),
        snapshot_roots=snapshot_roots,
        token=token,
        cors_origins=cors_origins,
    )
    click.echo(f"serving store {store_dir} on http://{host}:{port} ({workers} build workers)", err=True)
    serve_app(app, ServeOptions(host=host, port=port, log_level=log_level, header_timeout_s=header_timeout_s))


def _check_port(host: str, port: int) -> None:
    """One line before anything starts when ``host:port`` cannot be listened on (another server holds it, or the
    address is not this machine's); the server binds again for real a moment later (as uvicorn does, with
    SO_REUSEADDR, so a port in TIME_WAIT passes here as it does there)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise UserError(f"--host {host!r} does not resolve to an address ({exc}); give an IP address or name") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"--port {port} is in use on {host} (another server listens there); stop it or pick another "
                    "--port (0 picks a free one)"
                ) from None
            raise UserError(f"cannot listen on --host {host} --port {port}: {exc.strerror}") from None


def _read_token(path: Path) -> str:
    try:
        data = path.read_bytes()[:_MAX_TOKEN_FILE_BYTES]
    except OSError as exc:
        raise UserError(f"cannot read --token-file {path}: {exc.strerror}") from None
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise UserError(f"--token-file {path} holds no token of at least 16 characters on its first line")
    return token
