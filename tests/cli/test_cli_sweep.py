"""``llm-perf-opt sweep``: the what-if table from the analytic model, as Markdown, CSV, or files with a plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner

from llm_perf_opt.cli import cli

GRID = [
    "--device",
    "h100-sxm,a100-80gb",
    "--mode",
    "base",
    "--page",
    "1024x1024",
    "--batch",
    "1,4",
    "--max-new-tokens",
    "32",
]


def test_markdown_table_has_one_row_per_point() -> None:
    result = CliRunner().invoke(cli, ["sweep", *GRID])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| device | dtype | mode | page_width | page_height | batch_size |")
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert len(rows) == 2 * 1 * 2 * 1  # devices x pages x batches x lengths
    assert result.stderr == ""  # progress only on a terminal (issue 17); the table is all that is printed
    assert all("| 283 |" in row for row in rows)  # S = 1 + 273 + 9 for a Base 1024 page (model-facts §3.5)


def test_csv_has_every_column_and_times_grow_with_batch() -> None:
    result = CliRunner().invoke(cli, ["sweep", *GRID, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4 and "vision_ms" in rows[0] and "kv_cache_gb" in rows[0]
    h100 = {int(r["batch_size"]): r for r in rows if r["device"] == "h100-sxm"}
    assert float(h100[4]["ttft_ms"]) > float(h100[1]["ttft_ms"])
    assert float(h100[4]["pages_per_day"]) > float(h100[1]["pages_per_day"])


def test_out_writes_csv_markdown_and_plot_deterministically(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = CliRunner().invoke(cli, ["sweep", *GRID, "--dtype", "bf16,fp8", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "skipped: a100-80gb fp8: the device has no fp8 peak" in result.stderr
        runs.append({p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")})
    assert sorted(runs[0]) == ["sweep.csv", "sweep.md", "sweep.png", "sweep.svg"]
    assert runs[0] == runs[1]
    md = runs[0]["sweep.md"].decode()
    assert md.startswith("# What-if sweep\n") and "![Pages per day against batch size](sweep.png)" in md
    assert "- skipped: a100-80gb fp8" in md


def test_bad_values_are_one_line_errors(tmp_path: Path) -> None:
    cases = [
        (["--device", "h999"], "unknown device"),
        (["--mode", "huge"], "unknown"),
        (["--page", "0x0"], "--page takes WIDTHxHEIGHT"),
        (["--batch", "1,x"], "--batch takes positive integers"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["sweep", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["sweep", *GRID, "--out", str(blocker / "sub")])
    assert result.exit_code == 1 and result.stderr.startswith("error: --out ") and "cannot be created" in result.stderr


def test_a_sweep_with_no_point_to_time_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = CliRunner().invoke(cli, ["sweep", "--device", "t4", "--dtype", "fp8,bf16", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        "error: no point of the sweep can be timed: t4 fp8: the device has no fp8 peak (fp32, fp16); "
        "t4 bf16: the device has no bf16 peak (fp32, fp16)"
    )
    assert not out.exists()


def test_a_value_given_twice_is_refused_as_plan_does() -> None:
    cases = [
        (["--device", "h100-sxm,a100-80gb,h100-sxm"], "--device lists h100-sxm twice: 'h100-sxm,a100-80gb,h100-sxm'"),
        (["--batch", "1,4,04"], "--batch lists 4 twice: '1,4,04'"),
        (["--page", "1024x1024,1024X1024"], "--page lists 1024x1024 twice: '1024x1024,1024X1024'"),
        (["--dtype", "bf16, bf16"], "--dtype lists bf16 twice: 'bf16, bf16'"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["sweep", *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.strip() == f"error: {message}", args


def test_out_replaces_an_earlier_sweep_whole_and_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert CliRunner().invoke(cli, ["sweep", *GRID, "--out", str(out)]).exit_code == 0
    (out / "stale.png").write_bytes(b"old plot")
    assert CliRunner().invoke(cli, ["sweep", *GRID, "--out", str(out)]).exit_code == 0
    assert not (out / "stale.png").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = CliRunner().invoke(cli, ["sweep", *GRID, "--out", str(foreign)])
    assert result.exit_code == 1 and result.stderr.startswith("error: --out ") and "sweep:" not in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep"


def test_device_profile_takes_the_shipped_names_as_analyze_does(tmp_path: Path) -> None:
    # sweep.md's own trust line tells the user to pass --device-profile h100-sxm-hf-eager-gate
    h100 = ["--device", "h100-sxm", "--mode", "base", "--max-new-tokens", "32"]
    plain = CliRunner().invoke(cli, ["sweep", *h100, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    plain_md = (tmp_path / "plain" / "sweep.md").read_text(encoding="utf-8")
    assert "--device-profile h100-sxm-hf-eager-gate" in plain_md and "this run is uncalibrated" in plain_md
    named = CliRunner().invoke(
        cli, ["sweep", *h100, "--device-profile", "h100-sxm-hf-eager-gate", "--out", str(tmp_path / "named")]
    )
    assert named.exit_code == 0, named.output
    named_md = (tmp_path / "named" / "sweep.md").read_text(encoding="utf-8")
    assert "this run is uncalibrated" not in named_md  # an H100 profile on the H100 row
    plain_ttft = next(csv.DictReader(io.StringIO((tmp_path / "plain" / "sweep.csv").read_text())))["ttft_ms"]
    named_ttft = next(csv.DictReader(io.StringIO((tmp_path / "named" / "sweep.csv").read_text())))["ttft_ms"]
    assert float(named_ttft) > float(plain_ttft)  # the calibrated H100 profile is slower than the roofline
    # with a device the profile was not fitted on, the line still says uncalibrated
    mixed = CliRunner().invoke(
        cli, ["sweep", *GRID, "--device-profile", "h100-sxm-hf-eager-gate", "--out", str(tmp_path / "mixed")]
    )
    assert mixed.exit_code == 0, mixed.output
    assert "this run is uncalibrated" in (tmp_path / "mixed" / "sweep.md").read_text(encoding="utf-8")
    unknown = CliRunner().invoke(cli, ["sweep", *h100, "--device-profile", "h100-nope"])
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: ") and "h100-sxm-hf-eager-gate" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
