"""What one analysis is asked to do, resolved into concrete inputs, and the report id derived from it.

:class:`AnalysisOptions` is the one request shape behind both doors (CLI flags and the HTTP request); the
``report_id`` is a hash of its canonical JSON plus the tool version, never a clock, so the same request always
names the same report.  Files named by the options (a measurement, a device profile) enter the hash by content.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import asdict, field, fields, frozen

from llm_perf_opt import __version__
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec, get_device, normalize_dtype
from llm_perf_opt.measure.record import load_measurement
from llm_perf_opt.perf.named_profiles import named_profiles, resolve_profile_path
from llm_perf_opt.workloads import DEFAULT_PRESET_ID, RoutingModel, Workload, get_preset

__all__ = [
    "ATTENTION_KINDS",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "DEFAULT_RUNTIME",
    "MEASUREMENTS_ENV",
    "REMOTE_CODE_SCHEMES",
    "REPORT_ID_PATTERN",
    "AnalysisOptions",
    "default_attention",
    "options_from_payload",
    "options_from_request",
    "report_id_for",
    "resolve_device",
    "resolve_routing",
    "resolve_workload",
]

DEFAULT_MODEL = "deepseek-ocr-v1-base"
DEFAULT_DEVICE = "h100-sxm"
DEFAULT_RUNTIME = "hf-eager"
ATTENTION_KINDS = ("flash", "eager")
REPORT_ID_PATTERN = r"^dsocr-[0-9a-f]{16}$"
REMOTE_CODE_SCHEMES = ("hf-snapshot:", "hf:")
"""Model-source name prefixes whose sources run upstream v1 remote code (eager attention only)."""
MEASUREMENTS_ENV = "LLM_PERF_OPT_MEASUREMENTS"
"""Folder of measurement JSON files that a request's ``profile_run_id`` is looked up in (default
``benchmarks/measurements`` under the working directory)."""


def default_attention(model: str) -> str:
    """The attention kernel a model source is analysed with when none is asked for: ``eager`` for upstream v1
    remote code (``hf-snapshot:``, ``hf:``; the only kind it runs on the meta device), ``flash`` otherwise."""
    return "eager" if model.startswith(REMOTE_CODE_SCHEMES) else "flash"


def _page(value: tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _file_from_anywhere(value: str | None) -> str | None:
    """A path naming an existing file, made absolute: ``options.json`` then finds it from any working directory
    (``check --golden`` run elsewhere); anything else (a shipped profile name, a missing file) as given, so its error
    names what the user typed."""
    if value is None or not Path(value).is_file():
        return value
    return str(Path(value).absolute())


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
    measured: str | None = field(
        default=None, converter=_file_from_anywhere, metadata={"help": "measurement JSON to compare against"}
    )
    allow_mismatch: bool = field(
        default=False,
        metadata={"help": "compare a measurement taken on another device/dtype/attention/workload/runtime (flagged)"},
    )
    device_profile: str | None = field(
        default=None,
        converter=_file_from_anywhere,
        metadata={"help": "calibrated device profile: a file or a shipped name"},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "allow executing a model source's remote code"})
    runtime: str = field(
        default=DEFAULT_RUNTIME,
        metadata={
            "help": "inference runtime whose kernels time the model: hf-eager, hf-flash, hf-cuda-graph, vllm, sglang"
        },
    )
    text_only: bool = field(default=False, metadata={"help": "time a request with no image (S = prompt tokens + BOS)"})

    def canonical(self) -> dict[str, Any]:
        """The options as they enter the report id: files by content hash, defaults spelled out (the runtime and
        text_only only when not their defaults, so earlier report ids stay as they were)."""
        data = asdict(self, recurse=False)
        data["page"] = list(self.page) if self.page else None
        data["dtype"] = normalize_dtype(self.dtype)
        for key in ("measured", "device_profile"):
            if data[key] is not None:
                path = resolve_profile_path(data[key]) if key == "device_profile" else Path(data[key])
                data[key] = {"sha256": _file_sha256(path, key)}
        data.pop("trust_remote_code")
        data.pop("allow_mismatch")  # a refused comparison writes no report: the id needs no bit for it
        if data["runtime"] == DEFAULT_RUNTIME:
            data.pop("runtime")
        if not data["text_only"]:
            data.pop("text_only")
        return data


def report_id_for(options: AnalysisOptions) -> str:
    """``dsocr-`` + 16 hex digits of sha256(canonical options JSON + tool version): same request, same id."""
    payload = json.dumps({"options": options.canonical(), "version": __version__}, sort_keys=True)
    return "dsocr-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def options_from_request(request: DeepSeekOCRAnalyticRequest, *, measurements: Path | None = None) -> AnalysisOptions:
    """The HTTP request as analysis options: ``model_variant`` names the model source, extensions override.

    ``profile_run_id`` names a measurement (by its ``run_id``) in ``measurements`` (or ``$LLM_PERF_OPT_MEASUREMENTS``,
    or ``benchmarks/measurements``) that the report is compared against.
    """
    if (request.page_width is None) != (request.page_height is None):
        raise UserError("set both page_width and page_height, or neither")
    page = None if request.page_width is None else (request.page_width, request.page_height or 0)
    defaults = AnalysisOptions()
    measured = None
    if request.profile_run_id is not None:
        measured = str(_measurement_file(request.profile_run_id, measurements))
    return AnalysisOptions(
        model=request.model_variant,
        workload_id=request.workload_profile_id,
        mode=request.mode,
        page=page,
        prompt_tokens=request.prompt_tokens,
        max_new_tokens=request.max_new_tokens,
        batch_size=request.batch_size,
        device=request.device or defaults.device,
        dtype=request.dtype or defaults.dtype,
        attention=request.attention or default_attention(request.model_variant),
        routing=request.routing or defaults.routing,
        measured=measured,
        runtime=request.runtime or defaults.runtime,
        text_only=bool(request.text_only),
    )


def _measurement_file(run_id: str, folder: Path | None) -> Path:
    """The measurement file whose ``run_id`` is ``run_id`` (a one-line error naming the folder when none is)."""
    root = folder or Path(os.environ.get(MEASUREMENTS_ENV, "benchmarks/measurements"))
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            if load_measurement(path).run_id == run_id:
                return path
        except UserError:
            continue
    raise UserError(
        f"no measurement with run id {run_id!r} in {root}; run `llm-perf-opt measure --out {root}/<name>.json` "
        f"or set {MEASUREMENTS_ENV} to the folder that holds it"
    )


def options_from_payload(payload: Any, *, base: Path) -> AnalysisOptions:
    """:class:`AnalysisOptions` from ``options.json`` (its fields as JSON; files resolved beside the golden)."""
    data = payload.get("options", payload) if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        raise UserError("options.json must hold a JSON object of analysis options")
    unknown = sorted(set(data) - set(_OPTION_FIELDS))
    if unknown:
        raise UserError(
            f"options.json has unknown key(s) {', '.join(unknown)}; expected some of {', '.join(_OPTION_FIELDS)}"
        )
    values = dict(data)
    for key in ("measured", "device_profile"):
        if values.get(key) is not None:
            values[key] = _resolve_file(values[key], key, base)
    if values.get("page") is not None:
        page = values["page"]
        if not (isinstance(page, list | tuple) and len(page) == 2 and all(isinstance(v, int) for v in page)):
            raise UserError(f"options.json page must be [width, height] in pixels, got {page!r}")
    try:
        return AnalysisOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"options.json does not describe an analysis: {exc}") from None


def _resolve_file(value: Any, key: str, base: Path) -> str:
    if not isinstance(value, str):
        raise UserError(f"options.json {key} must be a file path, got {value!r}")
    if key == "device_profile" and value in named_profiles():
        return value
    candidates = [Path(value), base / value, base / Path(value).name]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise UserError(f"options.json names {key} file {value!r}, which is neither where it says nor beside the golden")


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


_OPTION_FIELDS = tuple(a.name for a in fields(AnalysisOptions))
