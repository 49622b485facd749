"""One analysis timed on several devices: the counts are traced once, only the roofline changes per device.

Per device: the same rescaled counts (model-facts, conventions §2) timed with that device's dense peaks and bandwidth
and the default eager profile, the same memory footprint checked against that device's capacity, and the throughput
at the analysed batch.  A device without a peak for the analysed dtype (fp8 on Ampere) is listed as skipped with the
reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import field, frozen

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec, get_device
from llm_perf_opt.perf import (
    CapacityCheck,
    Rates,
    StageTimes,
    Throughput,
    TimedTree,
    capacity_check,
    default_profile,
    throughput,
    time_tree,
)

__all__ = ["DeviceComparison", "DeviceTiming", "compare_devices"]


@frozen(kw_only=True)
class DeviceTiming:
    """One device's column: its spec, predicted times, bounds, throughput and memory fit."""

    device: DeviceSpec = field(metadata={"help": "catalog device"})
    timed: TimedTree = field(metadata={"help": "seconds per node and stage on this device"})
    stages: StageTimes = field(metadata={"help": "vision, projector, prefill, decode, TTFT, TPOT, end to end"})
    throughput: Throughput = field(metadata={"help": "at the analysed batch"})
    capacity: CapacityCheck = field(metadata={"help": "the analysed footprint against this device's memory"})
    profile_source: str = field(metadata={"help": "where the efficiencies and overhead come from"})


@frozen(kw_only=True)
class DeviceComparison:
    """The analysis (traced once) and one column per device that has the dtype."""

    result: AnalysisResult = field(metadata={"help": "the analysis on the first device"})
    columns: tuple[DeviceTiming, ...] = field(metadata={"help": "devices in the order asked"})
    skipped: tuple[str, ...] = field(default=(), metadata={"help": "devices without the dtype, with the reason"})


def compare_devices(result: AnalysisResult, device_ids: Sequence[str]) -> DeviceComparison:
    """Time ``result``'s counts on every device in ``device_ids`` (unknown ids: :class:`UserError` listing them)."""
    if not device_ids:
        raise UserError("compare needs at least one --device")
    devices = [get_device(d) for d in device_ids]
    columns: list[DeviceTiming] = []
    skipped: list[str] = []
    tree = result.trace.tree
    steps = max(result.workload.max_new_tokens - 1, 0)
    for device in devices:
        if result.dtype not in device.peak_flops:
            skipped.append(f"{device.device_id}: no {result.dtype} peak ({', '.join(device.dtypes)})")
            continue
        profile = result.profile if result.profile.device_id in ("*", device.device_id) else default_profile("eager")
        rates = Rates.for_device(device, dtype=result.dtype, profile=profile, counted_dtype=result.dtype)
        timed = time_tree(tree, rates)
        stages = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=steps)
        columns.append(
            DeviceTiming(
                device=device,
                timed=timed,
                stages=stages,
                throughput=throughput(stages, B=result.workload.batch_size, N=result.workload.max_new_tokens),
                capacity=capacity_check(result.memory, device),
                profile_source=profile.source,
            )
        )
    return DeviceComparison(result=result, columns=tuple(columns), skipped=tuple(skipped))
