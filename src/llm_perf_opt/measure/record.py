"""The measurement file: what one ``llm-perf-opt measure`` run observed, torch-free.

A :class:`Measurement` holds who/what/where (run id, model variant, resolved workload, device, software versions,
dtype, attention implementation), how it was timed (warm-up runs, timed repeats, clock), the per-stage timings of
every timed repeat (vision, projector, prefill and every decode step) and, when the torch profiler ran, the kernel
launches of one decode step.  Times are seconds (``*_s``), SI like everything else in the package.

Since schema version 2 a measurement may also hold :class:`MemoryRecord`: per stage the peak bytes allocated above
the resident weights (the run's inputs, the KV cache and every activation alive at the peak), the resident weights
and the KV cache at the end.  Version 1 files are read as version 2 without memory.

Stage boundaries follow ``docs/architecture.md``: ``vision`` is time inside ``model.sam_model`` and
``model.vision_model`` (plus container ops after them), ``projector`` the projector call plus view assembly and
injection, ``prefill`` the decoder over the prompt (embedding, layers, norm, ``lm_head``); a decode step is one
cached model call for one new token.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cattrs
from attrs import field, frozen

from llm_perf_opt.core import atomic_write_text
from llm_perf_opt.errors import UserError

__all__ = [
    "MEMORY_STAGES",
    "READABLE_VERSIONS",
    "SCHEMA_VERSION",
    "DeviceRecord",
    "KernelCount",
    "Measurement",
    "MeasurementError",
    "MemoryRecord",
    "SoftwareRecord",
    "StageMemory",
    "StageTimings",
    "WorkloadRecord",
    "dumps_measurement",
    "load_measurement",
    "loads_measurement",
    "migrate",
    "save_measurement",
]

SCHEMA_VERSION = 2
"""Version of the JSON layout; version 1 files are migrated on read, any other version is refused with a message."""

READABLE_VERSIONS = (1, 2)
"""Versions :func:`loads_measurement` reads (1: before memory was recorded)."""

MEMORY_STAGES = ("vision", "projector", "prefill", "decode")
"""Stages a :class:`MemoryRecord` has a peak for (``decode``: the highest over every decode step)."""


class MeasurementError(UserError):
    """A measurement file that cannot be read, or that does not fit the report it is compared with."""


def _positive_int(instance: object, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _nonneg_times(instance: object, attribute: Any, value: Any) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if any((not isinstance(v, int | float)) or v < 0 for v in values):
        raise ValueError(f"{attribute.name} must hold non-negative seconds, got {value!r}")


@frozen(kw_only=True)
class WorkloadRecord:
    """The resolved workload the model ran (the fields that decide its cost)."""

    workload_id: str | None = field(metadata={"help": "preset id (e.g. dsocr-standard-v1), or None for an ad-hoc one"})
    mode: str = field(metadata={"help": "resolution mode name"})
    page_width: int = field(metadata={"help": "page width (px)"})
    page_height: int = field(metadata={"help": "page height (px)"})
    grid: tuple[int, int] = field(metadata={"help": "crop grid (cols, rows); (1, 1) = no local crops"})
    num_crops: int = field(metadata={"help": "local crops per page"})
    image_tokens: int = field(metadata={"help": "image tokens per page"})
    prompt_tokens: int = field(metadata={"help": "text tokens after the image"})
    seq_len: int = field(metadata={"help": "prefill length S = 1 + image_tokens + prompt_tokens"})
    max_new_tokens: int = field(validator=_positive_int, metadata={"help": "tokens generated (1 from prefill)"})
    batch_size: int = field(validator=_positive_int, metadata={"help": "pages per forward"})

    def cost_key(self) -> tuple[object, ...]:
        """The fields that decide the model's work; two workloads with equal keys cost the same."""
        return (self.mode, self.grid, self.seq_len, self.max_new_tokens, self.batch_size)

    def describe(self) -> str:
        """``dsocr-standard-v1 (gundam 2x3 crops, S=912, 32 new tokens, batch 1)``-style one-liner."""
        crops = f"{self.grid[0]}x{self.grid[1]} crops" if self.num_crops else "no crops"
        head = self.workload_id or f"{self.page_width}x{self.page_height} page"
        return (
            f"{head} ({self.mode}, {crops}, S={self.seq_len}, {self.max_new_tokens} new tokens, "
            f"batch {self.batch_size})"
        )

    @classmethod
    def from_workload(cls, workload: Any, *, workload_id: str | None = None) -> WorkloadRecord:
        """From a resolved ``llm_perf_opt.workloads.Workload`` (read by attribute, so this module stays import-light).

        ``workload_id`` defaults to the workload's ``profile_id``.
        """
        mode = workload.mode
        return cls(
            workload_id=workload_id if workload_id is not None else getattr(workload, "profile_id", None),
            mode=str(getattr(mode, "name", mode)),
            page_width=int(workload.page_width),
            page_height=int(workload.page_height),
            grid=(int(workload.grid[0]), int(workload.grid[1])),
            num_crops=int(workload.num_crops),
            image_tokens=int(workload.image_tokens),
            prompt_tokens=int(workload.prompt_tokens),
            seq_len=int(workload.seq_len),
            max_new_tokens=int(workload.max_new_tokens),
            batch_size=int(workload.batch_size),
        )


@frozen(kw_only=True)
class DeviceRecord:
    """Where it ran; the micro-benchmarks give a CPU run a roofline of its own (there is no catalog entry for it)."""

    runtime: Literal["cpu", "cuda"] = field(metadata={"help": "torch device type the model ran on"})
    name: str = field(metadata={"help": "GPU name from torch, or the CPU model name"})
    device_id: str | None = field(default=None, metadata={"help": "hardware catalog id this device is (e.g. h100-sxm)"})
    threads: int = field(default=1, metadata={"help": "torch intra-op threads (CPU)"})
    memory_capacity_bytes: int | None = field(default=None, metadata={"help": "device (GPU) or host (CPU) memory"})
    matmul_flops_per_s: float | None = field(
        default=None, metadata={"help": "measured dense matmul throughput in the run's dtype (FLOP/s)"}
    )
    memory_bytes_per_s: float | None = field(
        default=None, metadata={"help": "measured copy bandwidth, read + write bytes per second"}
    )


@frozen(kw_only=True)
class SoftwareRecord:
    """Versions of everything that changes the timings."""

    python: str = field(metadata={"help": "Python version"})
    torch: str = field(metadata={"help": "torch version"})
    cuda: str | None = field(default=None, metadata={"help": "CUDA runtime torch was built with"})
    cudnn: str | None = field(default=None, metadata={"help": "cuDNN version"})
    llm_perf_opt: str = field(metadata={"help": "this package's version"})
    platform: str = field(metadata={"help": "operating system / machine"})


@frozen(kw_only=True)
class StageTimings:
    """One timed run of the whole workload: prefill stages and every decode step, seconds."""

    vision_s: float = field(validator=_nonneg_times, metadata={"help": "SAM + CLIP, all views"})
    projector_s: float = field(validator=_nonneg_times, metadata={"help": "projector, view assembly, injection"})
    prefill_s: float = field(validator=_nonneg_times, metadata={"help": "decoder over the prompt incl. lm_head"})
    decode_steps_s: tuple[float, ...] = field(validator=_nonneg_times, metadata={"help": "each decode step, in order"})

    @property
    def ttft_s(self) -> float:
        """Time to first token: the whole prefill forward."""
        return self.vision_s + self.projector_s + self.prefill_s

    @property
    def decode_s(self) -> float:
        """All decode steps."""
        return sum(self.decode_steps_s)

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first; None without decode steps."""
        return self.decode_s / len(self.decode_steps_s) if self.decode_steps_s else None

    @property
    def end_to_end_s(self) -> float:
        return self.ttft_s + self.decode_s


@frozen(kw_only=True)
class KernelCount:
    """Launches in one profiled forward (a decode step, or the prefill), as the torch profiler saw them."""

    per_decode_step: int = field(metadata={"help": "launches counted in the profiled forward"})
    method: str = field(metadata={"help": "what was counted: CUDA kernels, or CPU leaf aten ops as a proxy"})
    step: int = field(metadata={"help": "which decode step (1-based) was profiled; 0: the prefill forward"})
    device_busy_s: float | None = field(
        default=None,
        metadata={"help": "sum of the kernels' durations (CUDA): the device's own time, without waits for the host"},
    )


def _nonneg_int(instance: object, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{attribute.name} must be a non-negative integer of bytes, got {value!r}")


@frozen(kw_only=True)
class StageMemory:
    """The peak of one stage."""

    stage: str = field(metadata={"help": "vision, projector, prefill or decode (every decode step)"})
    peak_bytes: int = field(
        validator=_nonneg_int,
        metadata={
            "help": "highest bytes allocated above the resident weights while the stage ran: inputs, KV cache and "
            "live activations (CPU: live tensor storage; CUDA: max_memory_allocated minus the weights)"
        },
    )
    reserved_bytes: int | None = field(
        default=None,
        validator=_nonneg_int,
        metadata={"help": "CUDA: highest bytes the caching allocator held (max_memory_reserved, weights included)"},
    )


@frozen(kw_only=True)
class MemoryRecord:
    """Memory of one untimed run of the workload, stage by stage."""

    method: Literal["live-bytes", "cuda-allocator"] = field(
        metadata={
            "help": "live-bytes: peak of live tensor storages seen by a dispatch mode (CPU); cuda-allocator: "
            "torch.cuda.max_memory_allocated reset at every stage boundary"
        }
    )
    weights_bytes: int = field(
        validator=_nonneg_int, metadata={"help": "parameters and buffers resident before the run"}
    )
    kv_cache_bytes: int = field(validator=_nonneg_int, metadata={"help": "KV cache allocated at the end of the run"})
    stages: tuple[StageMemory, ...] = field(metadata={"help": "one peak per stage, in MEMORY_STAGES order"})

    def peak(self, stage: str) -> StageMemory | None:
        """The stage's entry (None when the run had no such stage, e.g. no decode step)."""
        return next((s for s in self.stages if s.stage == stage), None)


@frozen(kw_only=True)
class Measurement:
    """One measured run; :meth:`timings` summarises the timed repeats per stage (median unless ``statistic``)."""

    schema_version: int = field(default=SCHEMA_VERSION, metadata={"help": "JSON layout version"})
    run_id: str = field(metadata={"help": "unique id of this run"})
    created_utc: str = field(metadata={"help": "when the run ended (ISO 8601, UTC)"})
    model: str = field(metadata={"help": "model variant, e.g. deepseek-ocr-v1-base"})
    weights: str = field(default="random", metadata={"help": "random: weights were initialised, not loaded"})
    workload: WorkloadRecord = field(metadata={"help": "resolved workload"})
    device: DeviceRecord = field(metadata={"help": "where it ran"})
    software: SoftwareRecord = field(metadata={"help": "versions"})
    dtype: str = field(metadata={"help": "activation and weight dtype (fp32, bf16, fp16)"})
    attention: Literal["eager", "sdpa"] = field(metadata={"help": "decoder attention implementation"})
    routing: Literal["gate", "balanced"] = field(
        default="gate",
        metadata={
            "help": "MoE slice sizes: 'gate' (the random weights' own gate decisions) or 'balanced' (the balanced "
            "routing model that predictions assume)"
        },
    )
    warmup_runs: int = field(metadata={"help": "untimed runs of the whole workload before the timed ones"})
    clock: str = field(metadata={"help": "how time was taken (cuda-events, or perf_counter)"})
    statistic: Literal["median", "min"] = field(
        default="median",
        metadata={"help": "how repeats are summarised: median, or min (a CPU shared with other processes)"},
    )
    runs: tuple[StageTimings, ...] = field(metadata={"help": "every timed repeat"})
    kernels: KernelCount | None = field(default=None, metadata={"help": "launches per decode step, if profiled"})
    prefill_kernels: KernelCount | None = field(
        default=None, metadata={"help": "launches of one prefill forward (vision + projector + prefill), if profiled"}
    )
    memory: MemoryRecord | None = field(
        default=None, metadata={"help": "peak memory per stage of one untimed run (None: not recorded, schema 1)"}
    )
    notes: str = field(default="", metadata={"help": "free text"})

    def __attrs_post_init__(self) -> None:
        if not self.runs:
            raise ValueError("a measurement needs at least one timed run")
        steps = {len(run.decode_steps_s) for run in self.runs}
        expected = self.workload.max_new_tokens - 1
        if steps != {expected}:
            raise ValueError(f"every run must time {expected} decode steps (max_new_tokens - 1), got {sorted(steps)}")

    def timings(self) -> StageTimings:
        """:attr:`statistic` (median or min) over repeats, stage by stage and decode step by decode step."""
        pick = statistics.median if self.statistic == "median" else min
        return StageTimings(
            vision_s=pick(run.vision_s for run in self.runs),
            projector_s=pick(run.projector_s for run in self.runs),
            prefill_s=pick(run.prefill_s for run in self.runs),
            decode_steps_s=tuple(pick(step) for step in zip(*(r.decode_steps_s for r in self.runs), strict=True)),
        )

    def label(self) -> str:
        """``deepseek-ocr-v1-tiny / tiny mode ... / cpu fp32 eager`` one-liner for tables and messages."""
        routing = "" if self.routing == "gate" else f", {self.routing} routing"
        return (
            f"{self.model} / {self.workload.describe()} / {self.device.runtime} {self.dtype} {self.attention}{routing}"
        )


_converter = cattrs.Converter(forbid_extra_keys=True)


def dumps_measurement(measurement: Measurement) -> str:
    """Pretty, key-stable JSON (trailing newline)."""
    return json.dumps(_converter.unstructure(measurement), indent=2) + "\n"


def loads_measurement(text: str, *, source: str = "<string>") -> Measurement:
    """Parse JSON text; anything malformed is a one-line :class:`MeasurementError` naming ``source``."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasurementError(
            f"measurement {source} is not valid JSON: {exc.msg} at line {exc.lineno}{_not_a_measurement(text)}"
        ) from None
    if not isinstance(payload, Mapping):
        raise MeasurementError(f"measurement {source} must hold a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version")
    if version is None and "run_id" not in payload:
        raise MeasurementError(
            f"{source} is not a measurement: it has no schema_version or run_id{_not_a_measurement(text)}; pass a "
            "file written by `llm-perf-opt measure`"
        )
    if version not in READABLE_VERSIONS:
        raise MeasurementError(
            f"measurement {source} has schema_version {version!r}, expected one of "
            f"{', '.join(map(str, READABLE_VERSIONS))}; re-run `llm-perf-opt measure` with this version of the tool"
        )
    try:
        return _converter.structure(migrate(payload), Measurement)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        detail = "; ".join(_flatten(exc))
        raise MeasurementError(f"measurement {source} does not match the measurement schema: {detail}") from None


def _not_a_measurement(text: str) -> str:
    """What a file that is not a measurement looks like instead, for the error (a device profile or a report file:
    likely mix-ups), or nothing."""
    if "kernel_overhead_s" in text and "memory_efficiency" in text:
        return "; it looks like a device profile: pass it to --device-profile"
    if "report_id" in text:
        return "; it looks like a report file: compare reports with `llm-perf-opt diff`"
    return ""


def migrate(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload of any readable version as the current version: version 1 had no ``memory`` (read as None)."""
    out = dict(payload)
    if out.get("schema_version") == 1:
        out["schema_version"] = SCHEMA_VERSION
        out.setdefault("memory", None)
    return out


def _flatten(exc: BaseException) -> list[str]:
    if isinstance(exc, cattrs.BaseValidationError):
        return [msg for sub in exc.exceptions for msg in _flatten(sub)] or [str(exc)]
    return [f"{type(exc).__name__}: {exc}"]


def load_measurement(path: Path) -> Measurement:
    """Read a measurement file; a missing file is a one-line :class:`MeasurementError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MeasurementError(f"cannot read measurement {path}: {exc.strerror}") from None
    return loads_measurement(text, source=str(path))


def save_measurement(measurement: Measurement, path: Path) -> None:
    """Write atomically (a reader never sees half a file)."""
    atomic_write_text(Path(path), dumps_measurement(measurement))
