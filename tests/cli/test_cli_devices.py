"""``llm-perf-opt devices``: text table and JSON catalog."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.hardware import device_ids


def test_devices_text_lists_every_device_with_dense_peaks() -> None:
    result = CliRunner().invoke(cli, ["devices"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "fp32"]
    for device_id in device_ids():
        assert any(line.startswith(device_id + " ") for line in lines)
    h100 = next(line for line in lines if line.startswith("h100-sxm "))
    assert "989.4" in h100 and "1978.9" in h100 and "3.35" in h100  # dense bf16, dense fp8, TB/s
    assert "1979 " not in h100  # never the sparse figure
    a100 = next(line for line in lines if line.startswith("a100-40gb "))
    assert " - " in a100  # no fp8 on Ampere


def test_devices_json_is_si_with_sources() -> None:
    result = CliRunner().invoke(cli, ["devices", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["device_id"] for d in data] == list(device_ids())
    h100 = next(d for d in data if d["device_id"] == "h100-sxm")
    assert h100["peak_flops"]["bf16"] == 989.4e12
    assert h100["memory_bandwidth_bytes_per_s"] == 3.35e12
    assert h100["memory_capacity_bytes"] == 80_000_000_000
    assert all(d["source"] and d["source_date"] for d in data)


def test_devices_rejects_unknown_format() -> None:
    result = CliRunner().invoke(cli, ["devices", "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output
