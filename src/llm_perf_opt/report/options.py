"""What one analysis is asked to do, resolved into concrete inputs, and the report id derived from it.

:class:`AnalysisOptions` is the one request shape behind both doors (CLI flags and the HTTP request); the
``report_id`` is a hash of its canonical JSON plus the tool version, never a clock, so the same request always
names the same report.  Files named by the options (a measurement, a device profile) enter the hash by content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from attrs import asdict, field, frozen

from llm_perf_opt import __version__
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec, get_device, normalize_dtype
from llm_perf_opt.workloads import DEFAULT_PRESET_ID, RoutingModel, Workload, get_preset

__all__ = [
    "ATTENTION_KINDS",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "REMOTE_CODE_SCHEMES",
    "REPORT_ID_PATTERN",
    "AnalysisOptions",
    "default_attention",
    "report_id_for",
    "resolve_device",
    "resolve_routing",
    "resolve_workload",
]

DEFAULT_MODEL = "deepseek-ocr-v1-base"
DEFAULT_DEVICE = "h100-sxm"
ATTENTION_KINDS = ("flash", "eager")
REPORT_ID_PATTERN = r"^dsocr-[0-9a-f]{16}$"
REMOTE_CODE_SCHEMES = ("hf-snapshot:", "hf:")
"""Model-source name prefixes whose sources run upstream v1 remote code (eager attention only)."""


def default_attention(model: str) -> str:
    """The attention kernel a model source is analysed with when none is asked for: ``eager`` for upstream v1
    remote code (``hf-snapshot:``, ``hf:``; the only kind it runs on the meta device), ``flash`` otherwise."""
    return "eager" if model.startswith(REMOTE_CODE_SCHEMES) else "flash"


def _page(value: tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


@frozen(kw_only=True)
class AnalysisOptions:
    """One analysis request: model source, workload (a preset plus overrides), device and modelling choices."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model source id (built-in variant, hf:..., ...)"})
    workload_id: str = field(default=DEFAULT_PRESET_ID, metadata={"help": "workload preset the overrides start from"})
    mode: str | None = field(default=None, metadata={"help": "resolution mode override"})
    page: tuple[int, int] | None = field(default=None, converter=_page, metadata={"help": "page (W, H) px override"})
    prompt_tokens: int | None = field(default=None, metadata={"help": "prompt length override (tokens)"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "generated tokens override"})
    batch_size: int | None = field(default=None, metadata={"help": "pages per forward override"})
    device: str = field(default=DEFAULT_DEVICE, metadata={"help": "hardware catalog id"})
    dtype: str = field(default="bf16", metadata={"help": "weights/activations dtype"})
    attention: str = field(default="flash", metadata={"help": "attention kernel: flash | eager"})
    routing: str = field(default="balanced", metadata={"help": "MoE routing model (balanced, skewed:A, histogram:F)"})
    measured: str | None = field(default=None, metadata={"help": "measurement JSON to compare against"})
    allow_mismatch: bool = field(
        default=False,
        metadata={"help": "compare a measurement taken on another device/dtype/attention/workload/runtime (flagged)"},
    )
    device_profile: str | None = field(default=None, metadata={"help": "calibrated device profile file"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow executing a model source's remote code"})

    def canonical(self) -> dict[str, Any]:
        """The options as they enter the report id: files by content hash, defaults spelled out."""
        data = asdict(self, recurse=False)
        data["page"] = list(self.page) if self.page else None
        data["dtype"] = normalize_dtype(self.dtype)
        for key in ("measured", "device_profile"):
            if data[key] is not None:
                data[key] = {"sha256": _file_sha256(Path(data[key]), key)}
        data.pop("trust_remote_code")
        data.pop("allow_mismatch")  # a refused comparison writes no report: the id needs no bit for it
        return data


def report_id_for(options: AnalysisOptions) -> str:
    """``dsocr-`` + 16 hex digits of sha256(canonical options JSON + tool version): same request, same id."""
    payload = json.dumps({"options": options.canonical(), "version": __version__}, sort_keys=True)
    return "dsocr-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def resolve_workload(options: AnalysisOptions, config: DeepseekOCRConfig | None = None) -> Workload:
    """The preset named by ``workload_id`` with every given override applied (the crop rule re-derives tokens)."""
    base = Workload.from_profile(get_preset(options.workload_id), config=config)
    overridden = any(
        v is not None
        for v in (options.mode, options.page, options.prompt_tokens, options.max_new_tokens, options.batch_size)
    )
    if not overridden and config is None:
        return base
    return Workload.create(
        mode=options.mode if options.mode is not None else base.mode,
        page=options.page if options.page is not None else base.page,
        prompt_tokens=options.prompt_tokens if options.prompt_tokens is not None else base.prompt_tokens,
        max_new_tokens=options.max_new_tokens if options.max_new_tokens is not None else base.max_new_tokens,
        batch_size=options.batch_size if options.batch_size is not None else base.batch_size,
        num_pages=base.num_pages,
        config=config,
        profile_id=base.profile_id if not overridden else None,
    )


def resolve_device(options: AnalysisOptions) -> tuple[DeviceSpec, str]:
    """The catalog device and the normalised dtype (both checked, with the allowed values in the error)."""
    device = get_device(options.device)
    dtype = normalize_dtype(options.dtype)
    device.matmul_peak_flops(dtype)  # raises a UserError naming the dtypes this device has
    return device, dtype


def resolve_routing(options: AnalysisOptions) -> RoutingModel:
    """The routing model the ``routing`` text names."""
    return RoutingModel.parse(options.routing)


def check_attention(options: AnalysisOptions) -> None:
    """``attention`` must be one of :data:`ATTENTION_KINDS`."""
    if options.attention not in ATTENTION_KINDS:
        raise UserError(f"unknown attention kernel {options.attention!r}; expected one of: flash, eager")


def _file_sha256(path: Path, what: str) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        flag = "--measured" if what == "measured" else "--device-profile"
        raise UserError(f"cannot read {flag} file {path}: {exc.strerror}") from None
