from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.cli.serve import TEST_BACKEND_ENV, _is_loopback


def test_serve_is_registered_and_documents_its_flags() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--store", "--workers", "--allow-remote-code", "--max-body-bytes"):
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


def test_bad_test_backend_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path)], env={TEST_BACKEND_ENV: "no_such_module:X"})
    assert result.exit_code == 1
    assert "error: cannot load backend 'no_such_module:X'" in result.output


def test_workers_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path), "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output
