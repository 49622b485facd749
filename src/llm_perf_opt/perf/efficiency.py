"""Efficiencies and per-kernel overhead: the knobs that turn peak rates into predicted time.

A :class:`DeviceProfile` holds, for one device (or ``"*"`` for any):

* ``category_efficiency[c]``: fraction of the peak FLOP rate kernels of operator category ``c`` reach
  (matmul FLOPs against the dtype's tensor-core peak, vector FLOPs against the FP32 CUDA-core peak);
* ``memory_efficiency``: fraction of peak DRAM bandwidth any kernel's traffic moves at;
* ``kernel_overhead_s``: time added per kernel launch (host dispatch + launch latency + the tail of a small grid);
  ``stage_kernel_overhead_s`` may set it per stage (the host runs different code per stage: the vision encoders, the
  prefill's MoE expert loop, the cached decode step);
* ``overlap``: off (the default, issue 5's model) adds the per-kernel term to the roofline sum; on, the host's issue
  time and the device's execution time overlap (asynchronous CUDA launches), a stage takes the larger of the two, and
  ``device_kernel_s`` is the device's own time per kernel beyond its roofline (launch gap, minimum kernel duration).

The defaults below are generic (not calibrated on any one GPU); each has its basis in :data:`EFFICIENCY_BASIS`.
A calibration run writes a profile file (YAML or JSON) with the same keys; :func:`load_device_profile` reads it.
Missing categories in a file take the default, so a file may override only what it measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from attrs import field, frozen

from llm_perf_opt.errors import UserError

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORY_EFFICIENCY",
    "DEFAULT_MEMORY_EFFICIENCY",
    "EFFICIENCY_BASIS",
    "EXECUTION_MODES",
    "KERNEL_OVERHEAD_S",
    "PROFILE_STAGES",
    "DeviceProfile",
    "default_profile",
    "load_device_profile",
]

CATEGORIES: tuple[str, ...] = (
    "conv2d",
    "linear",
    "attention",
    "norm",
    "activation",
    "embedding",
    "moe_routing",
    "elementwise",
    "data_movement",
    "other",
)
"""Operator categories (docs/architecture.md); every Cost breakdown is keyed by these."""

EXECUTION_MODES: tuple[str, ...] = ("eager", "cuda-graph")

PROFILE_STAGES: tuple[str, ...] = ("vision", "projector", "prefill", "decode", "other")
"""Stages a per-stage kernel overhead may name (the time model's stages)."""

KERNEL_OVERHEAD_S: Mapping[str, float] = {"eager": 10e-6, "cuda-graph": 2e-6}
"""Per-kernel overhead by execution mode (basis in :data:`EFFICIENCY_BASIS`)."""

DEFAULT_CATEGORY_EFFICIENCY: Mapping[str, float] = {
    "linear": 0.60,
    "conv2d": 0.50,
    "attention": 0.40,
    "moe_routing": 0.30,
    "norm": 0.50,
    "activation": 0.50,
    "embedding": 0.50,
    "elementwise": 0.50,
    "data_movement": 0.50,
    "other": 0.50,
}

DEFAULT_MEMORY_EFFICIENCY = 0.80

EFFICIENCY_BASIS: Mapping[str, str] = {
    "linear": (
        "cuBLAS bf16 GEMMs reach about 80% of the dense peak on large square shapes (maximum achievable matmul "
        "FLOPs: ~790-850 of 989 TFLOPS on H100, ~270 of 312 on A100); the decoder's GEMMs are narrow "
        "(hidden 1280, a few hundred rows), and 40-60% is the usual model-FLOPs utilisation of tuned transformer "
        "runs on Hopper: 0.60"
    ),
    "conv2d": (
        "cuDNN implicit-GEMM convolutions (SAM patch embed, neck 1x1/3x3, two stride-2 3x3) on NCHW bf16 reach "
        "somewhat less than a plain GEMM of the same size: 0.50"
    ),
    "attention": (
        "FlashAttention-2 forward reaches about 35-40% of the dense peak on H100 at head dim 64-128 (and ~70% on "
        "A100); FlashAttention-3 ~75% on H100; eager bmm+softmax attention is no better: 0.40"
    ),
    "moe_routing": (
        "the gate is a skinny GEMM (1280 x 64) plus softmax/top-k/sort/scatter, far from peak whatever the device: 0.30"
    ),
    "vector": (
        "norm, activation, embedding, elementwise, data_movement, other: vector FLOPs on CUDA cores at the FP32 "
        "non-tensor rate; these kernels are bandwidth-bound, so the compute term rarely binds: 0.50"
    ),
    "memory": (
        "streaming kernels move 80-90% of peak DRAM bandwidth on A100/H100 (copy/elementwise, e.g. ~2.9-3.0 of "
        "3.35 TB/s on H100 SXM); LLM decode kernels report 60-80% bandwidth utilisation before launch overhead, "
        "which is modelled separately here: 0.80"
    ),
    "eager": (
        "PyTorch eager: host-side Python + dispatcher + cudaLaunchKernel costs about 5-20 us per op, and at batch "
        "1 a small model's GPU work per op is shorter than that, so the host sets the pace (a decode step of a "
        "small MoE model launches over a thousand kernels): 10 us per kernel"
    ),
    "cuda-graph": (
        "CUDA-graph replay (or torch.compile reduce-overhead / fused serving engines) removes host dispatch; "
        "what stays is the device-side launch gap between kernels, about 1-3 us: 2 us per kernel"
    ),
}
"""Why each default is what it is (reports print these)."""


def _fraction(instance: Any, attribute: Any, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise UserError(f"{attribute.name} must be in (0, 1], got {value!r}; an efficiency is a fraction of peak")


def _category_fractions(instance: Any, attribute: Any, value: Mapping[str, float]) -> None:
    for name, eff in value.items():
        if not 0.0 < eff <= 1.0:
            raise UserError(f"category_efficiency[{name}] must be in (0, 1], got {eff!r}")


def _overhead(instance: Any, attribute: Any, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise UserError(f"{attribute.name} must be in [0, 1) seconds, got {value!r} (10 us is 1e-05)")


def _float_map(value: Mapping[str, float]) -> dict[str, float]:
    return {str(k): float(v) for k, v in value.items()}


def _stage_overheads(instance: Any, attribute: Any, value: Mapping[str, float]) -> None:
    unknown = sorted(set(value) - set(PROFILE_STAGES))
    if unknown:
        raise UserError(
            f"stage_kernel_overhead_s has unknown stage(s) {', '.join(unknown)}; expected some of: "
            f"{', '.join(PROFILE_STAGES)}"
        )
    for stage, seconds in value.items():
        if not 0.0 <= seconds < 1.0:
            raise UserError(f"stage_kernel_overhead_s[{stage}] must be in [0, 1) seconds, got {seconds!r}")


def _full_categories(value: Mapping[str, float]) -> dict[str, float]:
    """Every category, missing ones at their default; an unknown one is a :class:`UserError`."""
    unknown = sorted(set(value) - set(CATEGORIES))
    if unknown:
        raise UserError(
            f"category_efficiency has unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"expected some of: {', '.join(CATEGORIES)}"
        )
    return {c: float(value.get(c, DEFAULT_CATEGORY_EFFICIENCY[c])) for c in CATEGORIES}


@frozen(kw_only=True)
class DeviceProfile:
    """Efficiencies and per-kernel overhead for one device (``device_id="*"``: any device).

    File schema (YAML or JSON); ``source``, ``memory_efficiency`` and ``kernel_overhead_s`` are required::

        device_id: h100-sxm            # or "*"
        source: "calibrate 2026-01-02, torch 2.6, eager"
        category_efficiency: {linear: 0.62, attention: 0.45}   # missing categories take the defaults
        memory_efficiency: 0.8
        kernel_overhead_s: 1.0e-05
        stage_kernel_overhead_s: {prefill: 1.2e-05}            # optional, per stage
        overlap: true                                          # optional, default false
        device_kernel_s: 2.0e-06                               # optional, default 0 (used with overlap)
    """

    device_id: str = field(default="*", metadata={"help": "device the profile was measured on, or '*' for any"})
    source: str = field(metadata={"help": "where the numbers come from (defaults, or a calibration run)"})
    category_efficiency: Mapping[str, float] = field(
        converter=_full_categories,
        validator=_category_fractions,
        metadata={"help": "fraction of peak FLOP/s per operator category"},
    )
    memory_efficiency: float = field(validator=_fraction, metadata={"help": "fraction of peak DRAM bandwidth"})
    kernel_overhead_s: float = field(validator=_overhead, metadata={"help": "seconds added per kernel launch"})
    stage_kernel_overhead_s: Mapping[str, float] = field(
        factory=dict,
        converter=_float_map,
        validator=_stage_overheads,
        metadata={"help": "per-stage kernel_overhead_s (stages not named take kernel_overhead_s)"},
    )
    overlap: bool = field(
        default=False,
        metadata={"help": "host issue overlaps device execution: a stage takes max(device, host), not their sum"},
    )
    device_kernel_s: float = field(
        default=0.0,
        validator=_overhead,
        metadata={"help": "device seconds per kernel beyond its roofline (launch gap); counted with overlap only"},
    )

    def kernel_overhead(self, stage: str) -> float:
        """Seconds per kernel launched in ``stage``: its own value, else :attr:`kernel_overhead_s`."""
        return self.stage_kernel_overhead_s.get(stage, self.kernel_overhead_s)

    def efficiency(self, category: str) -> float:
        """Compute efficiency of ``category``; an unknown category is a :class:`UserError`."""
        try:
            return self.category_efficiency[category]
        except KeyError:
            raise UserError(
                f"unknown operator category {category!r}; expected one of: {', '.join(CATEGORIES)}"
            ) from None

    def overhead_note(self) -> str | None:
        """How kernels cost time under this profile, in words; None for the plain form (one per-kernel time, added),
        which reports state as ``<t> per kernel``."""
        if not self.overlap and not self.stage_kernel_overhead_s:
            return None
        host = ", ".join(
            f"{self.kernel_overhead(st) * 1e6:.2f} us ({st})"
            for st in PROFILE_STAGES
            if st in self.stage_kernel_overhead_s
        )
        host = host or f"{self.kernel_overhead_s * 1e6:.2f} us"
        if self.overlap:
            return (
                f"per stage the larger of device time (roofline + {self.device_kernel_s * 1e6:.2f} us per kernel) and "
                f"host issue time ({host} per kernel)"
            )
        return f"{host} per kernel, added to the roofline"

    def check_device(self, device_id: str) -> None:
        """A profile measured on one device must not time another (``"*"`` fits all)."""
        if self.device_id not in ("*", device_id):
            raise UserError(
                f"device profile is for {self.device_id!r} but the device is {device_id!r}; "
                "use a profile calibrated on that device or one with device_id '*'"
            )

    def as_dict(self) -> dict[str, Any]:
        """The file schema, in a stable key order."""
        out: dict[str, Any] = {
            "device_id": self.device_id,
            "source": self.source,
            "category_efficiency": dict(self.category_efficiency),
            "memory_efficiency": self.memory_efficiency,
            "kernel_overhead_s": self.kernel_overhead_s,
        }
        # the optional keys only when set, so a profile without them reads and writes exactly as before
        if self.stage_kernel_overhead_s:
            out["stage_kernel_overhead_s"] = {
                s: self.stage_kernel_overhead_s[s] for s in sorted(self.stage_kernel_overhead_s)
            }
        if self.overlap:
            out["overlap"] = True
        if self.device_kernel_s:
            out["device_kernel_s"] = self.device_kernel_s
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "device profile") -> DeviceProfile:
        """Build from parsed YAML/JSON; unknown keys and bad values are one-line :class:`UserError` s."""
        if not isinstance(data, Mapping):
            raise UserError(f"{where} must hold a mapping of profile keys, got {type(data).__name__}")
        allowed = {
            "device_id",
            "source",
            "category_efficiency",
            "memory_efficiency",
            "kernel_overhead_s",
            "stage_kernel_overhead_s",
            "overlap",
            "device_kernel_s",
        }
        unknown = sorted(set(data) - allowed)
        if {"run_id", "runs"} <= set(data):  # (the file `measure` writes, a likely mix-up)
            raise UserError(
                f"{where} is a measurement (from `llm-perf-opt measure`), not a profile; fit a profile from "
                "measurements with `llm-perf-opt calibrate FILES --out PROFILE.yaml`, or pass it to --measured to "
                "compare with it"
            )
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")
        missing = sorted({"source", "memory_efficiency", "kernel_overhead_s"} - set(data))
        if missing:
            raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
        cats = data.get("category_efficiency") or {}
        if not isinstance(cats, Mapping):
            raise UserError(f"{where}: category_efficiency must map category -> fraction")
        stages = data.get("stage_kernel_overhead_s") or {}
        if not isinstance(stages, Mapping):
            raise UserError(f"{where}: stage_kernel_overhead_s must map stage -> seconds")
        overlap = data.get("overlap", False)
        if not isinstance(overlap, bool):
            raise UserError(f"{where}: overlap must be true or false, got {overlap!r}")
        try:
            return cls(
                device_id=str(data.get("device_id", "*")),
                source=str(data["source"]),
                category_efficiency={str(k): _number(v, f"category_efficiency[{k}]", where) for k, v in cats.items()},
                memory_efficiency=_number(data["memory_efficiency"], "memory_efficiency", where),
                kernel_overhead_s=_number(data["kernel_overhead_s"], "kernel_overhead_s", where),
                stage_kernel_overhead_s={
                    str(k): _number(v, f"stage_kernel_overhead_s[{k}]", where) for k, v in stages.items()
                },
                overlap=overlap,
                device_kernel_s=_number(data.get("device_kernel_s", 0.0), "device_kernel_s", where),
            )
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{name} must be a number, got {value!r}")
    return float(value)


def default_profile(execution: str = "eager") -> DeviceProfile:
    """The documented defaults, with the per-kernel overhead of ``execution`` (``eager`` or ``cuda-graph``)."""
    if execution not in KERNEL_OVERHEAD_S:
        raise UserError(f"unknown execution mode {execution!r}; expected one of: {', '.join(EXECUTION_MODES)}")
    return DeviceProfile(
        device_id="*",
        source=f"llm-perf-opt defaults ({execution})",
        category_efficiency=DEFAULT_CATEGORY_EFFICIENCY,
        memory_efficiency=DEFAULT_MEMORY_EFFICIENCY,
        kernel_overhead_s=KERNEL_OVERHEAD_S[execution],
    )


def load_device_profile(path: str | Path) -> DeviceProfile:
    """Read a profile from ``.yaml``/``.yml`` or ``.json``; unreadable or invalid -> one-line :class:`UserError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read device profile {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) if file.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"device profile {file} is not valid JSON/YAML: {first}") from None
    return DeviceProfile.from_mapping(data, where=f"device profile {file}")
