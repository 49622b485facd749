"""Where a measurement runs: device name, software versions, and two micro-benchmarks (torch).

The micro-benchmarks give every measurement the achievable rates of its own device: a dense square matmul in the
run's dtype (FLOP/s) and a large device-to-device copy (bytes read + written per second).  A CPU has no entry in
the hardware catalog, so the validation page builds its roofline from these two numbers; on a GPU they are kept
beside the catalog's peaks as a sanity check.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from llm_perf_opt import __version__
from llm_perf_opt.measure.record import DeviceRecord, SoftwareRecord

__all__ = [
    "DTYPES",
    "copy_bandwidth_bytes_per_s",
    "cpu_name",
    "describe_device",
    "guess_device_id",
    "host_memory_bytes",
    "matmul_flops_per_s",
    "software_record",
    "torch_dtype",
]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# (substrings that must all appear in torch's device name, lower case) -> hardware catalog id; first match wins
_GPU_IDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),
    (("h200",), "h200"),
    (("h20",), "h20"),
    (("b200",), "b200"),
    (("a100", "80"), "a100-80gb"),
    (("a100",), "a100-40gb"),
    (("l40s",), "l40s"),
    (("4090",), "rtx-4090"),
    (("5090",), "rtx-5090"),
)


def torch_dtype(name: str) -> torch.dtype:
    """``fp32``/``bf16``/``fp16`` -> the torch dtype."""
    return DTYPES[name]


def guess_device_id(name: str) -> str | None:
    """The hardware catalog id for a GPU name from torch (``NVIDIA H100 80GB HBM3`` -> ``h100-sxm``), or None."""
    lowered = name.lower()
    for needles, device_id in _GPU_IDS:
        if all(needle in lowered for needle in needles):
            return device_id
    return None


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def host_memory_bytes() -> int | None:
    """Physical host memory (POSIX ``sysconf``), or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _best_time_s(fn: Callable[[], object], *, device: torch.device, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call (synchronised on CUDA)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _default_repeats(device: torch.device) -> int:
    """5 on a GPU; 20 on a CPU, where other processes may share the cores and the best call is the clean one."""
    return 5 if device.type == "cuda" else 20


def matmul_flops_per_s(
    device: torch.device, dtype: torch.dtype, *, n: int | None = None, repeats: int | None = None
) -> float:
    """Best dense ``n x n`` matmul rate, ``2 n^3`` FLOPs per call (n = 4096 on CUDA, 512 on CPU); 6 digits."""
    side = n if n is not None else (4096 if device.type == "cuda" else 512)
    repeats = repeats if repeats is not None else _default_repeats(device)
    a = torch.randn(side, side, device=device, dtype=dtype)
    b = torch.randn(side, side, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = _best_time_s(lambda: torch.mm(a, b), device=device, repeats=repeats)
    return float(f"{2.0 * side**3 / seconds:.6g}")


def copy_bandwidth_bytes_per_s(device: torch.device, *, nbytes: int | None = None, repeats: int | None = None) -> float:
    """Best ``dst.copy_(src)`` rate, bytes read plus written (1 GiB on CUDA, 64 MiB on CPU); 6 digits."""
    size = nbytes if nbytes is not None else (1 << 30 if device.type == "cuda" else 64 << 20)
    repeats = repeats if repeats is not None else _default_repeats(device)
    src = torch.ones(size // 4, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = _best_time_s(lambda: dst.copy_(src), device=device, repeats=repeats)
    return float(f"{2.0 * src.numel() * 4 / seconds:.6g}")


def describe_device(
    device: torch.device, dtype: torch.dtype, *, device_id: str | None, benchmark: bool
) -> DeviceRecord:
    """A :class:`DeviceRecord` for ``device`` (micro-benchmarks only when ``benchmark``)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        resolved_id = device_id if device_id is not None else guess_device_id(name)
        capacity: int | None = int(torch.cuda.get_device_properties(device).total_memory)
    else:
        name, resolved_id, capacity = cpu_name(), device_id, host_memory_bytes()
    return DeviceRecord(
        runtime="cuda" if device.type == "cuda" else "cpu",
        name=name,
        device_id=resolved_id,
        threads=torch.get_num_threads(),
        memory_capacity_bytes=capacity,
        matmul_flops_per_s=matmul_flops_per_s(device, dtype) if benchmark else None,
        memory_bytes_per_s=copy_bandwidth_bytes_per_s(device) if benchmark else None,
    )


def software_record() -> SoftwareRecord:
    """Versions of Python, torch, CUDA, cuDNN, this package, and the platform."""
    cudnn_ok = torch.backends.cudnn.is_available()  # type: ignore[no-untyped-call]
    cudnn = torch.backends.cudnn.version() if cudnn_ok else None  # type: ignore[no-untyped-call]
    return SoftwareRecord(
        python=sys.version.split()[0],
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=str(cudnn) if cudnn is not None else None,
        llm_perf_opt=__version__,
        platform=platform.platform(),
    )
