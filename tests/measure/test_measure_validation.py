"""Validation page inputs: device rooflines of measurements, the three comparisons, the rendered page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from attrs import evolve

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.hardware import get_device
from llm_perf_opt.measure.record import KernelCount, Measurement, MeasurementError, StageTimings
from llm_perf_opt.measure.validation import (
    CPU_DEVICE_ID,
    device_key,
    device_spec_for,
    measured_stage_seconds,
    predict,
    rates_for,
    traced_kernels_per_step,
    validate,
)
from llm_perf_opt.measure.validation_md import GPU_COMMAND, render_validation
from llm_perf_opt.perf.calibrate import DEFAULT_GROUPS, predict_device_seconds, stage_groups
from llm_perf_opt.perf.efficiency import CATEGORIES, DeviceProfile

Factory = Callable[..., Measurement]
M = 10**6


def _tree(scale: int) -> CostTree:
    """A CPU-sized synthetic tree: compute-bound vision, launch-bound decode (3 steps), in bf16 bytes."""
    leaves = {
        "vision/sam": {"conv2d": Cost(matmul_flops=900 * M * scale, matmul_flops_executed=900 * M * scale,
                                      bytes_read=4 * M, kernels=40)},
        "vision/clip": {"attention": Cost(matmul_flops=300 * M * scale**2, matmul_flops_executed=300 * M * scale**2,
                                          bytes_read=2 * M, kernels=30),
                        "norm": Cost(vector_flops=40 * M * scale, bytes_read=M, kernels=20)},
        "projector/proj": {"linear": Cost(matmul_flops=10 * M, matmul_flops_executed=10 * M, bytes_read=M, kernels=8)},
        "prefill/layers": {"linear": Cost(matmul_flops=200 * M, matmul_flops_executed=200 * M, bytes_read=8 * M,
                                          kernels=300)},
        "decode/layers": {"linear": Cost(matmul_flops=6 * M, matmul_flops_executed=6 * M, bytes_read=24 * M,
                                         kernels=600)},
    }  # fmt: skip
    ids: dict[str, dict[str, Cost]] = dict(leaves)
    for stage in ("vision", "projector", "prefill", "decode"):
        ids[stage] = {c: v for k, d in leaves.items() if k.startswith(stage) for c, v in d.items()}
    ids["root"] = {}
    for stage in ("vision", "projector", "prefill", "decode"):
        for cat, cost in ids[stage].items():
            ids["root"][cat] = ids["root"].get(cat, Cost()) + cost
    return CostTree.from_categories(ids)


TRUTH = DeviceProfile(
    source="truth",
    category_efficiency={c: 0.4 if DEFAULT_GROUPS[c] == "matmul" else 0.3 for c in CATEGORIES},
    memory_efficiency=0.6,
    kernel_overhead_s=20e-6,
)


def _synthetic(factory: Factory, run_id: str, scale: int) -> Measurement:
    """A CPU measurement whose medians are exactly what the time model predicts under TRUTH."""
    base = factory(run_id=run_id)
    stage_s = predict(_tree(scale), rates_for(base, TRUTH, counted_dtype="bf16"))
    run = StageTimings(
        vision_s=stage_s["vision"],
        projector_s=stage_s["projector"],
        prefill_s=stage_s["prefill"],
        decode_steps_s=(stage_s["decode"] / 3,) * 3,
    )
    return evolve(base, runs=(run,))


def test_cpu_roofline_comes_from_the_micro_benchmarks(measurement_factory: Factory) -> None:
    spec = device_spec_for(measurement_factory())
    assert spec.device_id == CPU_DEVICE_ID
    assert spec.matmul_peak_flops("fp32") == 1e11 and spec.vector_peak_flops == 1e11
    assert spec.memory_bandwidth_bytes_per_s == 1e10
    # bytes are counted in bf16 and the run was fp32: twice the bytes
    assert rates_for(measurement_factory(), TRUTH, counted_dtype="bf16").bytes_scale == 2.0


def test_cpu_peaks_are_the_best_benchmarks_of_the_same_cpu(measurement_factory: Factory) -> None:
    m = measurement_factory()
    slowed = evolve(m, run_id="slow", device=evolve(m.device, matmul_flops_per_s=2e10, memory_bytes_per_s=3e10))
    other_cpu = evolve(m, run_id="other", device=evolve(m.device, name="Other CPU", matmul_flops_per_s=9e12))
    spec = device_spec_for(slowed, peers=[m, other_cpu])
    assert spec.matmul_peak_flops("fp32") == 1e11  # from m; the other CPU does not count
    assert spec.memory_bandwidth_bytes_per_s == 3e10  # from the slowed run itself


def test_gpu_measurement_uses_the_catalog(measurement_factory: Factory) -> None:
    m = measurement_factory()
    gpu = evolve(m, dtype="bf16", device=evolve(m.device, runtime="cuda", name="NVIDIA H100 80GB HBM3",
                                                 device_id="h100-sxm"))  # fmt: skip
    assert device_key(gpu) == "h100-sxm"
    assert device_spec_for(gpu) == get_device("h100-sxm")
    with pytest.raises(MeasurementError, match="--device-id"):
        device_key(evolve(gpu, device=evolve(gpu.device, device_id=None)))


def test_cpu_without_benchmarks_has_no_roofline(measurement_factory: Factory) -> None:
    m = measurement_factory()
    with pytest.raises(MeasurementError, match="without --no-benchmark"):
        device_spec_for(evolve(m, device=evolve(m.device, matmul_flops_per_s=None)))


def test_measured_stage_seconds_sum_the_decode_steps(measurement_factory: Factory) -> None:
    got = measured_stage_seconds(measurement_factory())
    assert got == pytest.approx({"vision": 0.011, "projector": 0.002, "prefill": 0.005, "decode": 0.008})


def test_validate_calibration_closes_the_gap_on_model_generated_data(measurement_factory: Factory) -> None:
    ms = [_synthetic(measurement_factory, f"meas-{i}", scale) for i, scale in enumerate((1, 2, 4))]
    trees = {f"meas-{i}": _tree(scale) for i, scale in enumerate((1, 2, 4))}
    v = validate(ms, lambda m: trees[m.run_id], counted_dtype=lambda m: "bf16")
    assert [r.measurement.run_id for r in v.rows] == ["meas-0", "meas-1", "meas-2"]
    assert list(v.profiles) == ["cpu fp32"]
    for row in v.rows:
        assert abs(row.uncalibrated.get("ttft").error) > 0.1  # type: ignore[union-attr]  # default profile is off
        for comparison in (row.calibrated, row.leave_one_out):
            assert comparison is not None
            for stage in ("vision", "prefill", "ttft", "tpot", "end_to_end"):
                assert comparison.get(stage).error == pytest.approx(0.0, abs=0.01)  # type: ignore[union-attr]
        assert row.traced_kernels_per_step == pytest.approx(600 / 3)
    fitted = v.profiles["cpu fp32"]
    assert not fitted.overlap  # a CPU does the work itself: host and device time add up
    # one host time per kernel per stage; with three measurements several profiles fit exactly (a stage's
    # efficiency trades against its overhead), so the predictions above are what is checked, not the values
    assert set(fitted.stage_kernel_overhead_s) == {"vision", "projector", "prefill", "decode"}


def test_a_lone_measurement_has_no_leave_one_out(measurement_factory: Factory) -> None:
    m = _synthetic(measurement_factory, "meas-0", 1)
    v = validate([m], lambda _: _tree(1), counted_dtype=lambda _: "bf16")
    assert v.rows[0].leave_one_out is None


def test_rendered_page_says_there_is_no_gpu_measurement(measurement_factory: Factory) -> None:
    ms = [_synthetic(measurement_factory, f"meas-{i}", scale) for i, scale in enumerate((1, 2))]
    trees = {"meas-0": _tree(1), "meas-1": _tree(2)}
    v = validate(ms, lambda m: trees[m.run_id], counted_dtype=lambda m: "bf16")
    page = render_validation(v, source_dir="benchmarks/measurements", command="llm-perf-opt validation-doc")
    assert page == render_validation(v, source_dir="benchmarks/measurements", command="llm-perf-opt validation-doc")
    assert "**No GPU measurement exists yet.**" in page
    assert f"`{GPU_COMMAND}`" in page
    assert "### `meas-0`" in page and "### `meas-1`" in page
    assert f"| **TTFT** | {ms[0].timings().ttft_s * 1e3:.3f} |" in page  # measured column of the first table
    assert page.count("| **mean abs error** |") == 1


def test_traced_kernels_per_step_without_decode() -> None:
    assert traced_kernels_per_step(_tree(1), 0) is None


def test_rendered_page_with_gpu_measurements_counts_the_goal(measurement_factory: Factory) -> None:
    def gpu(run_id: str, scale: int) -> Measurement:
        base = measurement_factory(run_id=run_id)
        base = evolve(base, dtype="bf16", device=evolve(base.device, runtime="cuda", name="H100", device_id="h100-sxm"))
        stage_s = predict(_tree(scale), rates_for(base, TRUTH, counted_dtype="bf16"))
        run = StageTimings(
            vision_s=stage_s["vision"],
            projector_s=stage_s["projector"],
            prefill_s=stage_s["prefill"],
            decode_steps_s=(stage_s["decode"] / 3,) * 3,
        )
        return evolve(base, runs=(run, run))

    ms = [gpu("gpu-0", 1), gpu("gpu-1", 2), gpu("gpu-2", 4)]
    trees = {"gpu-0": _tree(1), "gpu-1": _tree(2), "gpu-2": _tree(4)}
    v = validate(ms, lambda m: trees[m.run_id], counted_dtype=lambda m: "bf16")
    page = render_validation(v, source_dir="benchmarks/measurements", command="llm-perf-opt validation-doc")
    assert "No GPU measurement" not in page
    assert "- GPUs measured: H100 (h100-sxm)." in page
    assert "in-sample fit: TTFT 3/3, TPOT 3/3; leave-one-out: TTFT 3/3, TPOT 3/3." in page
    ttft = ms[0].timings().ttft_s * 1e3
    assert f"TTFT {ttft:.3f} to {ttft:.3f} ms" in page  # two identical runs: no spread


def test_gpu_profiles_overlap_and_compare_the_device_busy_time(measurement_factory: Factory) -> None:
    """GPU measurements fit an overlap profile; a recorded device busy time is compared with the device side."""
    truth = evolve(
        TRUTH,
        overlap=True,
        device_kernel_s=3e-6,
        stage_kernel_overhead_s={"vision": 25e-6, "projector": 30e-6, "prefill": 15e-6, "decode": 20e-6},
    )

    def gpu(run_id: str, scale: int) -> Measurement:
        base = measurement_factory(run_id=run_id)
        base = evolve(base, dtype="bf16", device=evolve(base.device, runtime="cuda", name="H100", device_id="h100-sxm"))
        rates = rates_for(base, truth, counted_dtype="bf16")
        tree = _tree(scale)
        stage_s = predict(tree, rates)
        groups = stage_groups(tree, rates)
        forward = groups["vision"].plus(groups["projector"]).plus(groups["prefill"])
        run = StageTimings(
            vision_s=stage_s["vision"],
            projector_s=stage_s["projector"],
            prefill_s=stage_s["prefill"],
            decode_steps_s=(stage_s["decode"] / 3,) * 3,
        )
        method = "cuda-kernels (torch.profiler)"
        return evolve(
            base,
            runs=(run,),
            prefill_kernels=KernelCount(
                per_decode_step=398, method=method, step=0, device_busy_s=predict_device_seconds(forward, truth)
            ),
            kernels=KernelCount(
                per_decode_step=200,
                method=method,
                step=1,
                device_busy_s=predict_device_seconds(groups["decode"].scaled(1 / 3), truth),
            ),
        )

    ms = [gpu("gpu-0", 1), gpu("gpu-1", 2), gpu("gpu-2", 4)]
    trees = {"gpu-0": _tree(1), "gpu-1": _tree(2), "gpu-2": _tree(4)}
    v = validate(ms, lambda m: trees[m.run_id], counted_dtype=lambda m: "bf16")
    profile = v.profiles["h100-sxm bf16"]
    assert profile.overlap and profile.device_kernel_s > 0
    for row in v.rows:
        assert [d.part for d in row.device] == ["prefill forward", "decode step"]
        assert row.device[0].traced_kernels == 40 + 30 + 20 + 8 + 300  # vision + projector + prefill
        assert row.device[1].traced_kernels == pytest.approx(200)  # 600 decode kernels over 3 steps
        assert all(abs(d.error) < 0.05 for d in row.device)
        ttft = row.calibrated.get("ttft")
        assert ttft is not None and ttft.error is not None and abs(ttft.error) < 0.05
    page = render_validation(v, source_dir="benchmarks/measurements", command="llm-perf-opt validation-doc")
    assert "| h100-sxm bf16 | overlap (max) |" in page
    assert (
        "- device busy, prefill forward:" in page and "- launches per prefill forward: 398 measured; traced 398" in page
    )
