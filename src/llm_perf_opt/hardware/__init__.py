"""Device catalog (torch-free): dense peak FLOP/s per dtype, memory bandwidth and capacity, each with its source."""

from llm_perf_opt.hardware.catalog import (
    BYTES_PER_ELEMENT,
    DTYPE_ALIASES,
    DTYPES,
    DeviceSpec,
    device_ids,
    get_device,
    list_devices,
    normalize_dtype,
)

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
