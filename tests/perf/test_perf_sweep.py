"""What-if sweeps against an injected fake cost function."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from llm_perf_opt.errors import UnknownIdError, UserError
from llm_perf_opt.perf import CATEGORIES, DeviceProfile, Rates, StageTimes
from llm_perf_opt.perf.compiled import WorkloadCosts
from llm_perf_opt.perf.sweep import COLUMNS, SweepSpec, rows_to_csv, rows_to_markdown, run_sweep
from llm_perf_opt.workloads import Workload

FakeFn = Callable[..., WorkloadCosts]

SPEC = SweepSpec(
    devices=("h100-sxm", "a100-40gb"),
    pages=(("gundam", (1024, 1024)), ("base", (1024, 1024))),
    batch_sizes=(1, 4),
    max_new_tokens=(1, 256),
    dtypes=("bf16", "fp8"),
)


def test_every_point_has_a_row_or_a_skip_reason(fake_cost_fn: FakeFn) -> None:
    result = run_sweep(SPEC, cost_fn=fake_cost_fn)
    assert SPEC.num_points == 2 * 2 * 2 * 2 * 2
    assert len(result.rows) == SPEC.num_points - 2 * 2 * 2  # a100-40gb x fp8 for every workload
    assert result.skipped == ("a100-40gb fp8: the device has no fp8 peak (fp32, tf32, bf16, fp16)",)
    assert {(r.device, r.dtype) for r in result.rows} == {
        ("h100-sxm", "bf16"),
        ("h100-sxm", "fp8"),
        ("a100-40gb", "bf16"),
    }
    assert run_sweep(SPEC, cost_fn=fake_cost_fn) == result  # deterministic


def test_cost_function_runs_once_per_workload(fake_cost_fn: FakeFn) -> None:
    calls: list[tuple[int, int, int]] = []

    def counting(config: Any, workload: Workload, **kw: Any) -> WorkloadCosts:
        calls.append((workload.seq_len, workload.batch_size, workload.max_new_tokens))
        return fake_cost_fn(config, workload, **kw)

    run_sweep(SPEC, cost_fn=counting)
    assert len(calls) == 2 * 2 * 2  # pages x batches x N, not x devices x dtypes
    assert len(set(calls)) == len(calls)


def test_row_matches_the_tree_walk_and_stage_algebra(fake_cost_fn: FakeFn) -> None:
    spec = SweepSpec(
        devices=("h100-sxm",),
        pages=(("gundam", (1024, 1024)),),
        batch_sizes=(4,),
        max_new_tokens=(256,),
        dtypes=("bf16",),
    )
    (row,) = run_sweep(spec, cost_fn=fake_cost_fn).rows
    workload = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=256, batch_size=4)
    costs = fake_cost_fn(None, workload, attention="flash", routing=None)
    walked = StageTimes.from_stage_seconds(costs.compiled.stage_seconds(Rates.for_device("h100-sxm")), decode_steps=255)
    assert row.seq_len == 703  # 1 + 693 + 9
    assert row.prefill_ms == pytest.approx(walked.prefill_s * 1e3)
    assert row.ttft_ms == pytest.approx(row.vision_ms + row.projector_ms + row.prefill_ms)
    assert row.tpot_ms * 255 == pytest.approx(row.decode_ms)
    assert row.end_to_end_ms == pytest.approx(row.ttft_ms + row.decode_ms)
    assert row.tokens_per_s == pytest.approx(4 * 256 / (row.end_to_end_ms / 1e3))
    assert row.pages_per_day == pytest.approx(86_400 * 4 / (row.end_to_end_ms / 1e3))
    assert row.weights_gb == pytest.approx(6.67221248)
    assert row.kv_cache_gb == pytest.approx(61_440 * (703 + 255) * 4 / 1e9)  # counted once, final length
    assert row.memory_gb == pytest.approx(row.weights_gb + row.kv_cache_gb + row.activations_gb)
    assert row.fits and row.max_batch >= 4


def test_dtype_scales_bytes_and_peaks(fake_cost_fn: FakeFn) -> None:
    spec = SweepSpec(
        devices=("h100-sxm",),
        pages=(("gundam", (1024, 1024)),),
        batch_sizes=(1,),
        max_new_tokens=(64,),
        dtypes=("bf16", "fp8"),
    )
    bf16, fp8 = run_sweep(spec, cost_fn=fake_cost_fn).rows
    assert fp8.weights_gb == pytest.approx(bf16.weights_gb / 2)
    assert fp8.vision_ms < bf16.vision_ms  # compute-bound: twice the peak


def test_batch_raises_throughput_when_decode_is_weight_bound(fake_cost_fn: FakeFn) -> None:
    spec = SweepSpec(
        devices=("h100-sxm",),
        pages=(("base", (1024, 1024)),),
        batch_sizes=(1, 8),
        max_new_tokens=(512,),
        dtypes=("bf16",),
    )
    one, eight = run_sweep(spec, cost_fn=fake_cost_fn).rows
    assert eight.tokens_per_s > one.tokens_per_s
    assert eight.kv_cache_gb == pytest.approx(8 * one.kv_cache_gb)


def test_profiles_per_device(fake_cost_fn: FakeFn) -> None:
    fast = DeviceProfile(
        device_id="h100-sxm",
        source="test",
        category_efficiency=dict.fromkeys(CATEGORIES, 1.0),
        memory_efficiency=1.0,
        kernel_overhead_s=0.0,
    )
    spec = SweepSpec(
        devices=("h100-sxm",), pages=(("base", (1024, 1024)),), batch_sizes=(1,), max_new_tokens=(8,), dtypes=("bf16",)
    )
    default = run_sweep(spec, cost_fn=fake_cost_fn).rows[0]
    tuned = run_sweep(spec, cost_fn=fake_cost_fn, profiles={"h100-sxm": fast}).rows[0]
    assert tuned.end_to_end_ms < default.end_to_end_ms


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"devices": ("h999",)}, UnknownIdError, "h100-sxm"),
        ({"dtypes": ("int4",)}, UnknownIdError, "bf16"),
        ({"pages": (("huge", (1000, 1000)),)}, UnknownIdError, "gundam"),
        ({"batch_sizes": ()}, UserError, "batch_sizes must list at least one value"),
    ],
)
def test_bad_axes_fail_before_any_work(change: dict[str, Any], error: type[Exception], message: str) -> None:
    def never(*args: Any, **kw: Any) -> WorkloadCosts:
        raise AssertionError("cost function must not run")

    with pytest.raises(error, match=message):
        run_sweep(SweepSpec(**{**_spec_kwargs(), **change}), cost_fn=never)


def _spec_kwargs() -> dict[str, Any]:
    return {
        "devices": ("h100-sxm",),
        "pages": (("base", (1024, 1024)),),
        "batch_sizes": (1,),
        "max_new_tokens": (8,),
        "dtypes": ("bf16",),
    }


def test_csv_and_markdown(fake_cost_fn: FakeFn) -> None:
    rows = run_sweep(SPEC, cost_fn=fake_cost_fn).rows
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert len(parsed) == len(rows)
    assert list(parsed[0]) == list(COLUMNS)
    assert parsed[0]["device"] == rows[0].device and parsed[0]["fits"] in {"yes", "no"}
    assert float(parsed[0]["end_to_end_ms"]) == pytest.approx(rows[0].end_to_end_ms, rel=1e-5)
    table = rows_to_markdown(rows, columns=("device", "dtype", "ttft_ms")).splitlines()
    assert table[0] == "| device | dtype | ttft_ms |"
    assert table[1] == "|---|---|---:|"
    assert len(table) == 2 + len(rows)
    with pytest.raises(UserError, match="unknown sweep column"):
        rows_to_csv(rows, columns=("speed",))


def test_markdown_has_one_format_per_column_and_no_exponents(fake_cost_fn: FakeFn) -> None:
    """Issue 17: ``1.20229e+06`` pages/day; a column mixing ``0.1837`` with ``91.8``; non-fitting rows headlined."""
    from attrs import evolve

    rows = list(run_sweep(SPEC, cost_fn=fake_cost_fn).rows)
    big = evolve(rows[0], pages_per_day=1_202_290.0, ttft_ms=0.1837, batch_size=2)
    small = evolve(rows[0], ttft_ms=91.8)
    no_fit = evolve(rows[0], fits=False, pages_per_day=9_999_999.0, batch_size=4)
    columns = ("batch_size", "ttft_ms", "pages_per_day", "memory_gb", "fits")
    lines = rows_to_markdown([big, small, no_fit], columns=columns).splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert not any("e+" in c or "e-" in c for row in cells for c in row)
    assert cells[0][2] == "1,202,290"
    assert [row[1] for row in cells[:2]] == ["0.184", "91.800"]  # one number of decimals in the column
    assert cells[2][2] == "-" and cells[2][4] == "no"  # a configuration that does not fit headlines no pages/day


def test_csv_has_no_exponents_and_no_tpot_without_a_decode_step(fake_cost_fn: FakeFn) -> None:
    """%g wrote pages/day 1179860 as 1.17986e+06; a point with max_new_tokens 1 wrote TPOT 0 (there is none)."""
    from attrs import evolve

    rows = run_sweep(SPEC, cost_fn=fake_cost_fn).rows
    one = next(r for r in rows if r.max_new_tokens == 1)
    many = next(r for r in rows if r.max_new_tokens == 256)
    big = evolve(many, pages_per_day=1_179_860.4, vision_ms=1.23456e-5, ttft_ms=73.23456789)
    columns = ("max_new_tokens", "tpot_ms", "vision_ms", "ttft_ms", "pages_per_day")
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv([big, one], columns=columns))))
    assert parsed[0] == {
        "max_new_tokens": "256",
        "tpot_ms": f"{many.tpot_ms:.6g}",
        "vision_ms": "0.0000123456",
        "ttft_ms": "73.2346",  # 6 significant digits as before where %g had no exponent
        "pages_per_day": "1179860",
    }
    assert parsed[1]["tpot_ms"] == ""
    table = rows_to_markdown([big, one], columns=columns).splitlines()
    assert table[3].split("|")[2].strip() == "-"
