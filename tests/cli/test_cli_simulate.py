"""``llm-perf-opt simulate`` and ``plan``: outputs, files and one-line errors (a closed-form timer stands in for the
runtime model, so these tests check the commands, not the kernel models)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llm_perf_opt.cli import cli
from llm_perf_opt.cli import simulate as simulate_module
from llm_perf_opt.perf.iteration import BatchComposition


class _Timer:
    """``8 ms + 0.1 ms per sequence + 20 us per prompt token + 30 ms per page``: fast enough to plan in tests."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def iteration_s(self, batch: BatchComposition) -> float:
        pages = sum(c.vision_pages for c in batch.prefill)
        prompt = sum(c.new_tokens for c in batch.prefill)
        return self.scale * (0.008 + 1e-4 * len(batch.decode_context) + 2e-5 * prompt + 0.03 * pages)


def _factory(runtime: str, config: Any, device: Any, dtype: str, mix: Any) -> _Timer:
    return _Timer(1.0 / (device.memory_bandwidth_bytes_per_s / 2e12))


@pytest.fixture(autouse=True)
def closed_form_timer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(simulate_module.TIMER_FACTORY, "default", _factory)
    yield


SIM = ["simulate", "--device", "a100-40gb", "--mode", "base", "--output-tokens", "64", "--requests", "200"]


def test_json_has_the_documented_fields() -> None:
    result = CliRunner().invoke(cli, [*SIM, "--concurrency", "16", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["throughput"]) == {
        "requests_per_s",
        "pages_per_s",
        "pages_per_day",
        "output_tokens_per_s",
        "input_tokens_per_s",
    }
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert set(data[key]) == {"mean", "p50", "p90", "p99"}
        assert data[key]["p50"] <= data[key]["p90"] <= data[key]["p99"]
    assert {"weights_gb", "kv_cache_gb", "kv_capacity_tokens"} <= set(data["memory"])
    assert data["scheduler"]["max_num_seqs"] == 256 and data["scheduler"]["block_size"] == 16
    assert data["runtime"] == "vllm" and data["preemptions"] == 0
    assert data["throughput"]["pages_per_day"] == pytest.approx(data["throughput"]["pages_per_s"] * 86_400, rel=1e-6)


def test_text_output_and_a_seed_reproduce() -> None:
    runs = [CliRunner().invoke(cli, [*SIM, "--rate", "5", "--seed", "3"]) for _ in range(2)]
    assert runs[0].exit_code == 0, runs[0].output
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.startswith("simulate: deepseek-ocr-v1-base on a100-40gb (bf16), runtime vllm")
    assert "open loop, 5 req/s" in runs[0].stdout


def test_out_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(cli, [*SIM, "--concurrency", "8", "--max-num-seqs", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # .llm-perf-opt-output: the marker
    assert names == ["curve.png", "curve.svg", "simulate.json", "simulate.md", "timeline.png", "timeline.svg"]
    md = (out / "simulate.md").read_text(encoding="utf-8")
    data = json.loads((out / "simulate.json").read_text(encoding="utf-8"))
    assert f"{data['throughput']['pages_per_day']:,.0f} pages/day" in md  # the same number in every file
    assert "| 16 |" in md  # the curve reaches max_num_seqs
    labels = _svg_texts(out / "curve.svg")  # pages/day ticks with SI prefixes, no "1e6" offset above the axis
    assert any(t.endswith(" k") or t.endswith(" M") for t in labels) and not any("e+" in t or "1e" in t for t in labels)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "error: --concurrency must be >= 1"),
        ([], "error: give exactly one of --concurrency C"),
        (["--concurrency", "4", "--rate", "2"], "error: give exactly one of --concurrency C"),
        (["--rate", "0"], "error: --rate must be > 0"),
        (["--concurrency", "4", "--device", "tpu-v9"], "error: unknown device 'tpu-v9'"),
        (["--concurrency", "4", "--runtime", "tgi"], "error: unknown runtime 'tgi'"),
        (["--concurrency", "4", "--repetition-share", "2"], "error: --repetition-share must be in 0..1"),
        (["--concurrency", "4", "--image", "big"], "error: --image takes WIDTHxHEIGHT"),
        (["--concurrency", "4", "--output-tokens", "0"], "error: --output-tokens must be >= 1"),
        (["--concurrency", "4", "--output-tokens", "lengths.txt"], "error: --output-tokens takes a token count"),
        (["--concurrency", "4", "--dtype", "fp8"], "error: --dtype must be bf16 or fp16"),
        (["--concurrency", "4", "--max-num-seqs", "0"], "error: --max-num-seqs must be >= 1"),
        (["--concurrency", "4", "--model", "deepseek-ocr-v9"], "error: unknown model 'deepseek-ocr-v9'"),
        (["--concurrency", "4", "--text-only"], "error: --text-only requests carry no page"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*SIM, *args])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


PLAN = [
    "plan",
    "--pages-per-day",
    "1000000",
    "--runtime",
    "vllm",
    "--devices",
    "a100-40gb,h100-sxm",
    "--mode",
    "base",
    "--output-tokens",
    "64",
    "--max-num-seqs",
    "32",
]


def test_plan_picks_a_device_and_says_why(tmp_path: Path) -> None:
    args = [*PLAN, "--slo-ttft-p90-ms", "2000", "--slo-tpot-p90-ms", "50", "--price", "a100-40gb=1.2,h100-sxm=2.5"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert " wins: $" in last and "per million pages at concurrency" in last
    assert sorted(p.name for p in (tmp_path / "plan").iterdir() if not p.name.startswith(".")) == [
        "plan.json",
        "plan.md",
        "plan.png",
        "plan.svg",
    ]
    data = json.loads((tmp_path / "plan" / "plan.json").read_text(encoding="utf-8"))
    assert data["winner"] in ("a100-40gb", "h100-sxm") and last == data["verdict"]
    labels = _svg_texts(tmp_path / "plan" / "plan.svg")
    assert "1000" in labels and any(t.endswith(" k") or t.endswith(" M") for t in labels)  # plain ms, SI pages/day
    assert not any("e+" in t or "1e" in t or "10^" in t for t in labels)
    for d in data["devices"]:
        feasible = [g for g in d["grid"] if g["meets_sla"]]
        assert d["concurrency"] == max(feasible, key=lambda g: (g["pages_per_s"], -g["concurrency"]))["concurrency"]
        assert d["gpus"] == -(-1_000_000 // d["pages_per_day_per_gpu"])


def test_plan_unreachable_sla_names_the_closest_device() -> None:
    result = CliRunner().invoke(cli, [*PLAN, "--slo-ttft-p90-ms", "1", "--slo-tpot-p90-ms", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no device meets p90 TTFT <= 1 ms and p90 TPOT <= 1 ms; closest: ")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "a100-40gb,nope"], "error: unknown device 'nope'"),
        (["--price", "h200=2"], "error: --price names 'h200'"),
        (["--slo-ttft-p90-ms", "0"], "error: --slo-ttft-p90-ms and --slo-tpot-p90-ms must be > 0"),
        (["--requests", "0"], "error: --requests must be >= 1, got 0"),
        (["--pages-per-day", "inf"], "error: --pages-per-day must be a finite number > 0, got inf"),
    ],
)
def test_plan_bad_input(args: list[str], message: str) -> None:
    base = [*PLAN, "--slo-ttft-p90-ms", "2000", "--slo-tpot-p90-ms", "50"]
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message)


def _p90_ttft(requests: int, concurrency: int = 16) -> tuple[float, int]:
    args = [*SIM[:-1], str(requests), "--concurrency", str(concurrency), "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data["ttft_ms"]["p90"], data["load"]["latency_skips_first"]


def test_closed_loop_percentiles_leave_out_the_opening_burst() -> None:
    # 16 clients send together at t = 0: at 64 requests the burst is 25% of the sample, at 400 it is 4%, so with the
    # burst counted p90 TTFT would depend on --requests; plan's SLA search reads the same steady-state statistic.
    short, skipped = _p90_ttft(64)
    long, _ = _p90_ttft(400)
    assert skipped == 16
    assert abs(short / long - 1) < 0.05


def _no_simulating(*args: Any) -> Any:
    raise AssertionError("simulated before checking --out")


@pytest.mark.parametrize("command", ["simulate", "plan"])
def test_a_foreign_out_folder_is_refused_at_the_door_as_analyze_does(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("mine\n", encoding="utf-8")
    monkeypatch.setitem(simulate_module.TIMER_FACTORY, "default", _no_simulating)
    args = (
        [*SIM, "--concurrency", "4"]
        if command == "simulate"
        else [*PLAN, "--slo-ttft-p90-ms", "1", "--slo-tpot-p90-ms", "1"]
    )
    result = CliRunner().invoke(cli, [*args, "--out", str(user)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: --out {user} holds files llm-perf-opt did not write; "
        "pass a new or empty folder (it is replaced whole)\n"
    )
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_simulate_and_plan_replace_their_own_earlier_output(tmp_path: Path) -> None:
    for args, out in (
        ([*SIM, "--concurrency", "4", "--max-num-seqs", "8"], tmp_path / "sim"),
        ([*PLAN, "--slo-ttft-p90-ms", "2000", "--slo-tpot-p90-ms", "50"], tmp_path / "plan"),
    ):
        for _ in range(2):
            result = CliRunner().invoke(cli, [*args, "--out", str(out)])
            assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["simulate", "plan"])
def test_progress_on_stderr_and_quiet_silences_it(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_perf_opt.cli import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    monkeypatch.setattr(progress, "SLOW_STEP_S", -1.0)  # every step leaves its line
    args = (
        [*SIM, "--concurrency", "4"]
        if command == "simulate"
        else [*PLAN, "--slo-ttft-p90-ms", "2000", "--slo-tpot-p90-ms", "50"]
    )
    loud = CliRunner().invoke(cli, args)
    quiet = CliRunner().invoke(cli, [*args, "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "simulating " in loud.stderr
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout


def _svg_texts(path: Path) -> list[str]:
    """The texts of a matplotlib SVG (drawn as paths, each after a comment naming it)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))


def test_a_run_that_is_all_opening_burst_says_its_latencies_are_a_cold_start() -> None:
    # 4 clients, 4 requests: nothing follows the burst, so the percentiles are the burst's, and the load line must not
    # claim they left it out
    args = [*SIM[:-1], "4", "--concurrency", "4"]
    data = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)
    assert data["load"]["latency_skips_first"] == 0
    assert data["load"]["all_in_opening_burst"] is True
    text = CliRunner().invoke(cli, args).stdout
    assert "leave out" not in text
    assert "every request is in the opening burst" in text and "raise --requests above --concurrency" in text
    _, skipped = _p90_ttft(5, concurrency=4)
    assert skipped == 4
