from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.cli.serve import _is_loopback


def test_serve_is_registered_and_documents_its_flags() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    flags = ("--host", "--port", "--store", "--workers", "--allow-remote-code", "--max-body-bytes", "--snapshot-root")
    flags += ("--build-timeout-s", "--build-memory-mb", "--token-file", "--cors-origin", "--header-timeout-s")
    for flag in flags:
        assert flag in result.output
    assert "[default: 127.0.0.1]" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


def test_unwritable_store_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["serve", "--store", str(blocker / "store")])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot create store folder")
    assert "Traceback" not in result.output


def test_no_backend_is_ever_imported_by_name() -> None:
    source = (Path(__file__).resolve().parents[2] / "src" / "llm_perf_opt" / "cli" / "serve.py").read_text()
    assert "environ" not in source and "import_module" not in source


def test_a_short_token_file_is_one_line_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("short\n")
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path / "s"), "--token-file", str(token)])
    assert result.exit_code == 1
    assert result.output.startswith("error: --token-file")


def test_snapshot_roots_need_allow_remote_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path / "s"), "--snapshot-root", str(tmp_path)])
    assert result.exit_code == 1
    assert "--allow-remote-code" in result.output


def test_workers_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path), "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_a_busy_port_is_one_line_error_before_serving(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path / "store"), "--port", str(port)])
    assert result.exit_code == 1
    assert result.output == (
        f"error: --port {port} is in use on 127.0.0.1 (another server listens there); stop it or pick another "
        "--port (0 picks a free one)\n"
    )
