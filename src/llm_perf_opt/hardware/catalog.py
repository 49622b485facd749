"""The device catalog: one YAML data file per GPU under ``hardware/data``, all numbers in SI units.

Each file holds **dense** peak FLOP/s per dtype (never the 2:4-sparsity figures, which are kept beside them only so a
test can check that the dense ones are smaller), memory bandwidth (bytes/s), capacity (bytes), SM count, and the
document the numbers come from with its date.

Dtype conventions:

* ``fp32`` is the non-tensor (CUDA-core) FP32 rate. It is what elementwise, reduction, norm and softmax work runs
  at (the time model charges every vector FLOP to it) and what an fp32 matmul runs at without TF32.
* ``tf32``, ``bf16``, ``fp16``, ``fp8`` are dense tensor-core rates with FP32 accumulation (on GeForce parts that is
  half the FP16-accumulate rate the marketing tables lead with).
* Capacity: the datasheet's "80 GB" is taken as 80e9 bytes. The physical memory is GiB-based and slightly larger;
  the difference is left as headroom for the CUDA context and the allocator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml
from attrs import field, frozen

from llm_perf_opt.errors import UnknownIdError, UserError

__all__ = [
    "BYTES_PER_ELEMENT",
    "DTYPES",
    "DTYPE_ALIASES",
    "DeviceSpec",
    "device_ids",
    "get_device",
    "list_devices",
    "normalize_dtype",
]

DTYPES: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8")
"""Dtypes a device may list a peak for, in catalog order."""

BYTES_PER_ELEMENT: Mapping[str, int] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
"""Storage bytes per element (tf32 is a tensor-core math mode over fp32 storage)."""

DTYPE_ALIASES: Mapping[str, str] = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
}
"""torch-style names accepted wherever a dtype is read (the contracts use ``bfloat16``)."""

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def normalize_dtype(dtype: str) -> str:
    """``bfloat16`` -> ``bf16`` etc.; an unknown name is a :class:`UnknownIdError` listing the allowed ones."""
    name = DTYPE_ALIASES.get(dtype.strip().lower(), dtype.strip().lower())
    if name not in DTYPES:
        raise UnknownIdError("dtype", dtype, [*DTYPES, *DTYPE_ALIASES])
    return name


def _positive_rates(instance: Any, attribute: Any, value: Mapping[str, float]) -> None:
    for dtype, rate in value.items():
        if dtype not in DTYPES:
            raise ValueError(f"{attribute.name}: unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
        if not rate > 0:
            raise ValueError(f"{attribute.name}[{dtype}] must be > 0, got {rate}")


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def _date(instance: Any, attribute: Any, value: str) -> None:
    if not _DATE.match(value):
        raise ValueError(f"source_date must be YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")


def _nonempty(instance: Any, attribute: Any, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@frozen(kw_only=True)
class DeviceSpec:
    """One GPU: dense peaks per dtype, memory, SM count, and where the numbers come from."""

    device_id: str = field(validator=_nonempty, metadata={"help": "catalog id, e.g. h100-sxm"})
    name: str = field(validator=_nonempty, metadata={"help": "product name"})
    architecture: str = field(validator=_nonempty, metadata={"help": "architecture and die"})
    sm_count: int = field(validator=_positive, metadata={"help": "streaming multiprocessors"})
    memory_capacity_bytes: int = field(validator=_positive, metadata={"help": "device memory (bytes)"})
    memory_bandwidth_bytes_per_s: float = field(validator=_positive, metadata={"help": "peak DRAM bandwidth (B/s)"})
    peak_flops: Mapping[str, float] = field(
        validator=_positive_rates, metadata={"help": "dense peak FLOP/s per dtype; fp32 = non-tensor"}
    )
    sparse_peak_flops: Mapping[str, float] = field(
        factory=dict, validator=_positive_rates, metadata={"help": "published 2:4-sparsity figures (check only)"}
    )
    source: str = field(validator=_nonempty, metadata={"help": "documents the numbers come from"})
    source_date: str = field(validator=_date, metadata={"help": "date of the source (YYYY[-MM[-DD]])"})
    notes: str = field(default="", metadata={"help": "caveats"})

    @property
    def dtypes(self) -> tuple[str, ...]:
        """Dtypes this device has a peak for, in catalog order."""
        return tuple(d for d in DTYPES if d in self.peak_flops)

    @property
    def vector_peak_flops(self) -> float:
        """Non-tensor FP32 rate: what the time model charges vector FLOPs to."""
        return self.peak_flops["fp32"]

    def matmul_peak_flops(self, dtype: str) -> float:
        """Dense matmul rate for ``dtype`` (tensor cores; plain FP32 for ``fp32``).

        A dtype this device has no peak for (e.g. fp8 on an A100) is a :class:`UnknownIdError` listing its dtypes.
        """
        name = normalize_dtype(dtype)
        if name not in self.peak_flops:
            raise UnknownIdError(f"dtype for device {self.device_id}", dtype, self.dtypes)
        return self.peak_flops[name]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (SI units) in a stable key order, for JSON output."""
        return {
            "device_id": self.device_id,
            "name": self.name,
            "architecture": self.architecture,
            "sm_count": self.sm_count,
            "memory_capacity_bytes": self.memory_capacity_bytes,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "peak_flops": {d: self.peak_flops[d] for d in self.dtypes},
            "sparse_peak_flops": {d: self.sparse_peak_flops[d] for d in DTYPES if d in self.sparse_peak_flops},
            "source": self.source,
            "source_date": self.source_date,
            "notes": self.notes,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "device spec") -> DeviceSpec:
        """Build from a parsed data file; a missing or malformed key is a one-line :class:`UserError`."""
        try:
            return cls(
                device_id=str(data["device_id"]),
                name=str(data["name"]),
                architecture=str(data["architecture"]),
                sm_count=int(data["sm_count"]),
                memory_capacity_bytes=int(float(data["memory_capacity_bytes"])),
                memory_bandwidth_bytes_per_s=float(data["memory_bandwidth_bytes_per_s"]),
                peak_flops={str(k): float(v) for k, v in dict(data["peak_flops"]).items()},
                sparse_peak_flops={str(k): float(v) for k, v in dict(data.get("sparse_peak_flops") or {}).items()},
                source=str(data["source"]).strip(),
                source_date=str(data["source_date"]),
                notes=str(data.get("notes") or "").strip(),
            )
        except KeyError as exc:
            raise UserError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: {exc}") from None


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser with the safe constructor when PyYAML has it (the same values, several times faster: every
command that checks a device id reads the whole catalog), else the pure-Python safe loader."""


@cache
def _catalog() -> dict[str, DeviceSpec]:
    """Every data file shipped in ``llm_perf_opt/hardware/data``, by id (read once)."""
    specs: dict[str, DeviceSpec] = {}
    for entry in sorted(resources.files("llm_perf_opt.hardware").joinpath("data").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        spec = DeviceSpec.from_mapping(yaml.load(entry.read_text(encoding="utf-8"), Loader=_LOADER), where=entry.name)
        if f"{spec.device_id}.yaml" != entry.name:
            raise UserError(f"{entry.name}: device_id {spec.device_id!r} must match the file name")
        specs[spec.device_id] = spec
    return specs


def device_ids() -> tuple[str, ...]:
    """Known ids, sorted."""
    return tuple(sorted(_catalog()))


def list_devices() -> list[DeviceSpec]:
    """Every device, sorted by id."""
    catalog = _catalog()
    return [catalog[i] for i in sorted(catalog)]


def get_device(device_id: str) -> DeviceSpec:
    """The spec for ``device_id`` (case-insensitive); unknown -> :class:`UnknownIdError` listing the known ids."""
    catalog = _catalog()
    spec = catalog.get(device_id.strip().lower())
    if spec is None:
        raise UnknownIdError("device", device_id, catalog)
    return spec
