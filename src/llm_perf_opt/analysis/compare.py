"""One analysis timed on several devices: the counts are traced once, only the roofline changes per device.

Per device: the same rescaled counts (model-facts, conventions §2) timed with that device's dense peaks and bandwidth
and the default eager profile, the same memory footprint checked against that device's capacity, and the throughput
at the analysed batch.  With a runtime other than ``hf-eager`` (``compare --runtime``) each device's stage times come
from that runtime's kernel model on that device (:func:`llm_perf_opt.runtimes.request.runtime_run`), exactly as
``analyze --runtime`` times its one device.  A device without a peak for the analysed dtype (fp8 on Ampere, bf16 on a
T4) is listed as skipped with the reason, never dropped silently, wherever it stands in the list (the one analysis
runs on the first device that has the dtype, :func:`analysis_device`); only a list where no device has it is an
error.  A device listed twice is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import field, frozen

from llm_perf_opt.analysis.model_source import runtime_config
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec, get_device, normalize_dtype
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
from llm_perf_opt.runtimes import get_runtime
from llm_perf_opt.runtimes.bands import trust_lines
from llm_perf_opt.runtimes.request import RuntimeRun, runtime_run

__all__ = ["DeviceComparison", "DeviceTiming", "analysis_device", "compare_devices"]


@frozen(kw_only=True)
class DeviceTiming:
    """One device's column: its spec, predicted times, bounds, throughput and memory fit."""

    device: DeviceSpec = field(metadata={"help": "catalog device"})
    timed: TimedTree = field(metadata={"help": "seconds per node and stage on this device"})
    stages: StageTimes = field(metadata={"help": "vision, projector, prefill, decode, TTFT, TPOT, end to end"})
    throughput: Throughput = field(metadata={"help": "at the analysed batch"})
    capacity: CapacityCheck = field(metadata={"help": "the analysed footprint against this device's memory"})
    profile_source: str = field(metadata={"help": "where the efficiencies and overhead come from"})
    runtime_run: RuntimeRun | None = field(
        default=None, metadata={"help": "the runtime's kernel model on this device (None: hf-eager, the traced tree)"}
    )


@frozen(kw_only=True)
class DeviceComparison:
    """The analysis (traced once) and one column per device that has the dtype."""

    result: AnalysisResult = field(metadata={"help": "the analysis on the first device"})
    columns: tuple[DeviceTiming, ...] = field(metadata={"help": "devices in the order asked"})
    skipped: tuple[str, ...] = field(default=(), metadata={"help": "devices without the dtype, with the reason"})
    runtime: str = field(default="hf-eager", metadata={"help": "the runtime whose kernels time every column"})
    trust: str = field(default="", metadata={"help": "the runtime's expected error band (docs/validation-runtimes.md)"})


def analysis_device(device_ids: Sequence[str], dtype: str) -> str:
    """The device the comparison's one analysis runs on: the first of ``device_ids`` with a ``dtype`` peak (the others
    without one are skipped by :func:`compare_devices`, with the reason).  Unknown or repeated ids, or no device with
    the dtype: :class:`UserError` (an unknown dtype is left to the flag check, which names the allowed ones)."""
    devices = _devices(device_ids)
    try:
        name = normalize_dtype(dtype)
    except UserError:
        return devices[0].device_id
    having = [d for d in devices if name in d.peak_flops]
    if not having:
        peaks = "; ".join(f"{d.device_id}: {', '.join(d.dtypes)}" for d in devices)
        raise UserError(f"--dtype {dtype!r}: none of the devices has a peak for it ({peaks}); choose a dtype they have")
    return having[0].device_id


def _devices(device_ids: Sequence[str]) -> list[DeviceSpec]:
    if not device_ids:
        raise UserError("compare needs at least one --device")
    twice = sorted({d for d in device_ids if list(device_ids).count(d) > 1})
    if twice:
        raise UserError(f"--device lists {', '.join(twice)} more than once; name each device once")
    return [get_device(d) for d in device_ids]


def compare_devices(result: AnalysisResult, device_ids: Sequence[str]) -> DeviceComparison:
    """Time ``result``'s counts on every device in ``device_ids`` (unknown ids: :class:`UserError` listing them;
    repeated ids: :class:`UserError`; devices without the dtype: skipped, with the reason)."""
    devices = _devices(device_ids)
    columns: list[DeviceTiming] = []
    skipped: list[str] = []
    tree = result.trace.tree
    steps = max(result.workload.max_new_tokens - 1, 0)
    runtime = get_runtime(result.options.runtime)
    for device in devices:
        if result.dtype not in device.peak_flops:
            skipped.append(f"{device.device_id}: no {result.dtype} peak ({', '.join(device.dtypes)})")
            continue
        profile = result.profile if result.profile.device_id in ("*", device.device_id) else default_profile("eager")
        rates = Rates.for_device(device, dtype=result.dtype, profile=profile, counted_dtype=result.dtype)
        timed = time_tree(tree, rates)
        stages = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=steps)
        run = None if runtime.is_baseline else _runtime_run(result, device)
        if run is not None:
            stages = run.stages
        columns.append(
            DeviceTiming(
                device=device,
                timed=timed,
                stages=stages,
                throughput=throughput(stages, B=result.workload.batch_size, N=result.workload.max_new_tokens),
                capacity=capacity_check(result.memory, device),
                profile_source=profile.source if run is None else f"runtime {runtime.runtime_id} kernel model",
                runtime_run=run,
            )
        )
    return DeviceComparison(
        result=result,
        columns=tuple(columns),
        skipped=tuple(skipped),
        runtime=runtime.runtime_id,
        trust=trust_lines(
            runtime.runtime_id,
            device_ids=[c.device.device_id for c in columns],
            profile_device=result.profile.device_id if runtime.is_baseline else None,  # others do not read it
            model=result.options.model,
        ),
    )


def _runtime_run(result: AnalysisResult, device: DeviceSpec) -> RuntimeRun:
    """The analysed request on ``device`` as its runtime runs it (the same call ``analyze --runtime`` makes; the
    result carries the source's config, which is what :func:`runtime_config` reads)."""
    options = result.options
    return runtime_run(
        runtime=options.runtime,
        config=runtime_config(result, result.workload),
        workload=result.workload,
        device=device.device_id,
        dtype=result.dtype,
        attention=options.attention,
        text_only=options.text_only,
        routing=result.routing,
    )
