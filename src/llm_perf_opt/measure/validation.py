"""Predicted versus measured for a set of measurements, uncalibrated and calibrated (torch-free).

For every measurement the time model runs on the measured device:

* **GPU**: the hardware catalog entry named by the measurement's ``device_id``;
* **CPU**: no catalog entry exists, so the roofline is built from the micro-benchmarks recorded with the
  measurements (dense matmul FLOP/s in the run's dtype as the matmul *and* vector peak, copy bandwidth as the memory
  peak; the best value among the measurements of that CPU).

Three predictions per measurement: *uncalibrated* (the documented default profile for eager PyTorch: additive
per-kernel overhead),
*calibrated* (a profile fitted on every measurement of the same device and dtype: an in-sample fit) and
*leave-one-out* (fitted on the *other* measurements of that device and dtype, when there are any: the honest
out-of-sample number).  Profiles fitted on a GPU overlap host and device time (the host issues kernels while the
device runs earlier ones; see :func:`~llm_perf_opt.perf.roofline.overlapped_time_s`); on a CPU, where the host does
the work, they stay additive.  The cost tree of each measurement (what the model does for its workload) comes from a
caller-supplied function, so this module stays free of torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from attrs import field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.hardware import DeviceSpec, get_device
from llm_perf_opt.measure.compare import StageComparison, compare
from llm_perf_opt.measure.record import Measurement, MeasurementError
from llm_perf_opt.perf.calibrate import (
    DEFAULT_GROUPS,
    DEVICE_PARTS,
    CalibrationCase,
    StageGroups,
    fit_device_profile,
    predict_device_seconds,
    stage_groups,
)
from llm_perf_opt.perf.efficiency import DeviceProfile, default_profile
from llm_perf_opt.perf.roofline import Rates, time_tree

__all__ = [
    "CPU_DEVICE_ID",
    "DeviceBusy",
    "Validation",
    "ValidationRow",
    "calibration_case",
    "device_busy_seconds",
    "device_comparison",
    "device_key",
    "device_spec_for",
    "fits_overlap",
    "group_key",
    "measured_stage_seconds",
    "predict",
    "rates_for",
    "slug",
    "traced_kernels_per_step",
    "validate",
]

CPU_DEVICE_ID = "cpu"
"""``device_id`` of a CPU roofline built from a measurement's micro-benchmarks (and of profiles fitted on it)."""

TreeFor = Callable[[Measurement], CostTree]


def device_key(measurement: Measurement) -> str:
    """The device a profile is fitted for: the catalog id of a GPU, :data:`CPU_DEVICE_ID` for a CPU."""
    if measurement.device.runtime == "cpu":
        return CPU_DEVICE_ID
    if measurement.device.device_id is None:
        raise MeasurementError(
            f"measurement {measurement.run_id} ran on GPU {measurement.device.name!r}, which has no hardware catalog "
            "id; re-run measure with --device-id ID (see `llm-perf-opt devices`)"
        )
    return measurement.device.device_id


def device_spec_for(measurement: Measurement, *, peers: Sequence[Measurement] = ()) -> DeviceSpec:
    """The roofline device of a measurement: its catalog GPU, or a CPU spec from micro-benchmarks.

    A CPU's peaks are the best micro-benchmark results among ``measurement`` and those ``peers`` taken on the same
    CPU with the same thread count: other processes sharing the cores only ever slow a benchmark down.
    """
    key = device_key(measurement)
    if key != CPU_DEVICE_ID:
        return get_device(key)
    dev = measurement.device
    same = [
        p.device
        for p in (measurement, *peers)
        if p.device.runtime == "cpu" and (p.device.name, p.device.threads) == (dev.name, dev.threads)
    ]
    flops = [d.matmul_flops_per_s for d in same if d.matmul_flops_per_s is not None]
    bandwidth = [d.memory_bytes_per_s for d in same if d.memory_bytes_per_s is not None]
    if not flops or not bandwidth:
        raise MeasurementError(
            f"CPU measurement {measurement.run_id} has no micro-benchmark rates, so it has no roofline; "
            "re-run measure without --no-benchmark"
        )
    rate = {measurement.dtype: max(flops), "fp32": max(flops)}
    return DeviceSpec(
        device_id=CPU_DEVICE_ID,
        name=dev.name,
        architecture=f"CPU, {dev.threads} thread(s), rates measured by the harness",
        sm_count=max(dev.threads, 1),
        memory_capacity_bytes=dev.memory_capacity_bytes or 1,
        memory_bandwidth_bytes_per_s=max(bandwidth),
        peak_flops=rate,
        source=f"best micro-benchmarks (dense matmul, device copy) of {len(same)} measurement(s) on this CPU",
        source_date=measurement.created_utc[:10],
    )


def rates_for(
    measurement: Measurement, profile: DeviceProfile, *, counted_dtype: str, peers: Sequence[Measurement] = ()
) -> Rates:
    """Peaks of the measured device in the measured dtype, with ``profile``'s efficiencies.

    ``counted_dtype`` is the dtype the cost tree's bytes were counted in (byte counts are rescaled to the run's);
    ``peers`` as in :func:`device_spec_for`.
    """
    return Rates.for_device(
        device_spec_for(measurement, peers=peers), dtype=measurement.dtype, profile=profile, counted_dtype=counted_dtype
    )


def measured_stage_seconds(measurement: Measurement) -> dict[str, float]:
    """``vision``, ``projector``, ``prefill`` and ``decode`` (all steps) in seconds: medians over repeats."""
    t = measurement.timings()
    return {"vision": t.vision_s, "projector": t.projector_s, "prefill": t.prefill_s, "decode": t.decode_s}


def predict(tree: CostTree, rates: Rates) -> dict[str, float]:
    """Predicted seconds per stage (the time model's ``stage_s``)."""
    return dict(time_tree(tree, rates).stage_s)


def device_busy_seconds(measurement: Measurement) -> dict[str, float]:
    """The profiler's device busy time: ``prefill forward`` and ``decode step`` where recorded (CUDA only)."""
    out: dict[str, float] = {}
    if measurement.prefill_kernels is not None and measurement.prefill_kernels.device_busy_s:
        out["prefill forward"] = measurement.prefill_kernels.device_busy_s
    if measurement.kernels is not None and measurement.kernels.device_busy_s:
        out["decode step"] = measurement.kernels.device_busy_s
    return out


def fits_overlap(measurement: Measurement) -> bool:
    """Whether a profile fitted on this measurement overlaps host and device time: on a GPU, yes."""
    return measurement.device.runtime == "cuda"


def calibration_case(
    measurement: Measurement, tree: CostTree, *, counted_dtype: str, peers: Sequence[Measurement] = ()
) -> CalibrationCase:
    """What :func:`~llm_perf_opt.perf.calibrate.fit_device_profile` needs from one measurement."""
    return CalibrationCase(
        label=measurement.run_id,
        tree=tree,
        rates=rates_for(measurement, default_profile("eager"), counted_dtype=counted_dtype, peers=peers),
        measured_s=measured_stage_seconds(measurement),
        device_busy_s=device_busy_seconds(measurement),
        decode_steps=max(measurement.workload.max_new_tokens - 1, 0),
    )


@frozen(kw_only=True)
class DeviceBusy:
    """The device side alone: the profiler's busy time against the model's device time (roofline + K * t_d)."""

    part: str = field(metadata={"help": "'prefill forward' or 'decode step'"})
    measured_s: float = field(metadata={"help": "sum of the profiled kernels' durations"})
    predicted_s: float = field(metadata={"help": "device time under the calibrated profile"})
    measured_kernels: int = field(metadata={"help": "kernels the profiler saw"})
    traced_kernels: float = field(metadata={"help": "kernels the tracer counted (a decode step: the mean step)"})

    @property
    def error(self) -> float:
        return self.predicted_s / self.measured_s - 1.0


def device_comparison(
    tree: CostTree, rates: Rates, measurement: Measurement, *, groups: Mapping[str, StageGroups] | None = None
) -> tuple[DeviceBusy, ...]:
    """:class:`DeviceBusy` for each part the measurement profiled with durations (none on a CPU); ``groups``:
    ``stage_groups(tree, rates)`` when the caller has them (they do not depend on ``rates.profile``)."""
    busy = device_busy_seconds(measurement)
    groups = groups if groups is not None else stage_groups(tree, rates)
    steps = max(measurement.workload.max_new_tokens - 1, 0)
    counts = {"prefill forward": measurement.prefill_kernels, "decode step": measurement.kernels}
    out = []
    for part, stages in DEVICE_PARTS.items():
        present = [groups[st] for st in stages if st in groups]
        count = counts[part]
        if part not in busy or not present or count is None or (part == "decode step" and steps <= 0):
            continue
        combined = present[0]
        for extra in present[1:]:
            combined = combined.plus(extra)
        if part == "decode step":
            combined = combined.scaled(1.0 / steps)
        out.append(
            DeviceBusy(
                part=part,
                measured_s=busy[part],
                predicted_s=predict_device_seconds(combined, rates.profile),
                measured_kernels=count.per_decode_step,
                traced_kernels=combined.kernels,
            )
        )
    return tuple(out)


@frozen(kw_only=True)
class ValidationRow:
    """One measurement with its three comparisons (``leave_one_out`` is None when it is alone on its device)."""

    measurement: Measurement
    traced_kernels_per_step: float | None = field(metadata={"help": "decode-stage kernels / decode steps (tracer)"})
    device: tuple[DeviceBusy, ...] = field(default=(), metadata={"help": "device busy time, calibrated profile"})
    uncalibrated: StageComparison
    calibrated: StageComparison
    leave_one_out: StageComparison | None


@frozen(kw_only=True)
class Validation:
    rows: tuple[ValidationRow, ...] = field(metadata={"help": "one per measurement, sorted by device then run id"})
    profiles: Mapping[str, DeviceProfile] = field(metadata={"help": "group_key -> profile fitted on all of it"})
    prior: DeviceProfile = field(metadata={"help": "the uncalibrated profile"})


def group_key(m: Measurement) -> str:
    """Measurements fitted together: one device, one dtype, one MoE routing (``h100-sxm bf16``, or
    ``h100-sxm bf16 balanced-routing``): a profile's host time per kernel is fitted per traced kernel, and the
    routing decides how many kernels really ran."""
    routing = "" if m.routing == "gate" else f" {m.routing}-routing"
    return f"{device_key(m)} {m.dtype}{routing}"


def validate(
    measurements: Sequence[Measurement],
    tree_for: TreeFor,
    *,
    counted_dtype: Callable[[Measurement], str],
    groups: Mapping[str, str] = DEFAULT_GROUPS,
) -> Validation:
    """Uncalibrated, calibrated and leave-one-out comparisons for every measurement."""
    prior = default_profile("eager")
    ordered = sorted(measurements, key=lambda m: (group_key(m), m.run_id))
    trees = {m.run_id: _OwnOnce(tree_for(m)) for m in ordered}
    by_group: dict[str, list[Measurement]] = {}
    for m in ordered:
        by_group.setdefault(group_key(m), []).append(m)
    cases = {
        m.run_id: calibration_case(m, trees[m.run_id], counted_dtype=counted_dtype(m), peers=ordered) for m in ordered
    }

    def fit(members: Sequence[Measurement], key: str, what: str) -> DeviceProfile:
        source = f"llm-perf-opt calibrate ({what}: {', '.join(m.run_id for m in members)})"
        return fit_device_profile(
            [cases[m.run_id] for m in members],
            prior=prior,
            device_id=key.split()[0],
            source=source,
            groups=groups,
            overlap=fits_overlap(members[0]),
            refuse_unidentified=False,  # leave-one-out on few measurements: the ridge keeps the prior, as documented
        ).profile

    profiles = {key: fit(members, key, "all") for key, members in by_group.items()}
    rows = []
    for m in ordered:
        tree, dtype, key = trees[m.run_id], counted_dtype(m), group_key(m)
        others = [o for o in by_group[key] if o.run_id != m.run_id]
        loo = None
        if others:
            loo_profile = fit(others, key, "leave-one-out")
            loo = compare(predict(tree, rates_for(m, loo_profile, counted_dtype=dtype, peers=ordered)), m)
        calibrated_rates = rates_for(m, profiles[key], counted_dtype=dtype, peers=ordered)
        rows.append(
            ValidationRow(
                measurement=m,
                traced_kernels_per_step=traced_kernels_per_step(tree, m.workload.max_new_tokens - 1),
                device=device_comparison(tree, calibrated_rates, m, groups=cases[m.run_id].groups),
                uncalibrated=compare(predict(tree, rates_for(m, prior, counted_dtype=dtype, peers=ordered)), m),
                calibrated=compare(predict(tree, calibrated_rates), m),
                leave_one_out=loo,
            )
        )
    return Validation(rows=tuple(rows), profiles=profiles, prior=prior)


class _OwnOnce(CostTree):
    """A cost tree (read-only) that works out its nodes' own costs once: :func:`validate` times each tree under
    three profiles or more, and every timing starts from them."""

    def __init__(self, tree: CostTree) -> None:
        super().__init__(tree)
        self._own: dict[str, dict[str, Cost]] | None = None

    def exclusive_by_category(self) -> dict[str, dict[str, Cost]]:
        if self._own is None:
            self._own = super().exclusive_by_category()
        return self._own


def traced_kernels_per_step(tree: CostTree, steps: int) -> float | None:
    """Kernels the tracer counted in the decode stage, per decode step (None without decode steps)."""
    node = tree.get("decode")
    if node is None or steps <= 0:
        return None
    return sum(cost.kernels for cost in node.by_category.values()) / steps


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """File-name-safe lower-case form (``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``)."""
    return _SLUG.sub("-", text.lower()).strip("-")
