"""The request validator shared by the CLI and the HTTP service.

Both doors describe what they were asked in one :class:`_Inputs` and name each field their own way (a JSON path over
HTTP, a flag on the command line); :func:`_check` walks the fields in a fixed order and raises the first violation as
an :class:`AdmissionError`: ``<field> <value>: <what is wrong>; expected <bound>; <fix>``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

import llm_perf_opt.admission.limits as L
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.contracts import DeepSeekOCRAnalyticRequest
from llm_perf_opt.errors import ContractError, UserError
from llm_perf_opt.hardware import DTYPE_ALIASES, DTYPES, device_ids, get_device, normalize_dtype
from llm_perf_opt.runtimes.catalog import RUNTIMES
from llm_perf_opt.workloads import MODES, PRESETS, RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import OCR2_MODES, Ocr2Workload
from llm_perf_opt.workloads.routing import too_few_experts

__all__ = [
    "AdmissionError",
    "check_analysis_flags",
    "check_model_source_flag",
    "check_request",
    "check_snapshot_path",
    "check_sweep_flags",
    "inline_routing_text",
]

_ID = re.compile(L.ID_PATTERN)
_MODEL_ID = re.compile(L.MODEL_ID_PATTERN)
_HUB = re.compile(L.HUB_SOURCE_PATTERN)
_ROUTING = re.compile(L.ROUTING_PATTERN)


_NOUNS = {
    "workload_id": "workload profile",
    "mode": "resolution mode",
    "device": "device",
    "attention": "attention kernel",
    "runtime": "inference runtime",
}


class AdmissionError(ContractError):
    """A request or flag outside what the tool accepts; ``path`` names the field (``$.batch_size``, ``--batch``)."""


@frozen(kw_only=True)
class _Inputs:
    """What one analysis asks for, whichever door it came through (None: the preset's or the default value)."""

    model: str
    workload_id: str
    model_id: str | None = None
    mode: str | None = None
    page_width: int | None = None
    page_height: int | None = None
    prompt_tokens: int | None = None
    max_new_tokens: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    attention: str | None = None
    routing: str | None = None
    routing_histogram: Any = None
    profile_run_id: str | None = None
    runtime: str | None = None
    text_only: bool = False


_HTTP_NAMES = {
    "model": "model_variant",
    "workload_id": "workload_profile_id",
    "page": "page_width",
}
_CLI_NAMES = {
    "model": "--model",
    "workload_id": "--workload",
    "mode": "--mode",
    "page_width": "--image",
    "page_height": "--image",
    "page": "--image",
    "prompt_tokens": "--prompt-tokens",
    "max_new_tokens": "--max-new-tokens",
    "batch_size": "--batch",
    "device": "--device",
    "dtype": "--dtype",
    "attention": "--attention",
    "routing": "--routing",
}


@frozen(kw_only=True)
class _Door:
    http: bool
    allow_remote_code: bool = True
    snapshot_roots: tuple[Path, ...] = ()

    def label(self, field: str) -> str:
        if self.http:
            return _HTTP_NAMES.get(field, field)
        return _CLI_NAMES.get(field, "--" + field.replace("_", "-"))

    def path(self, field: str) -> str:
        return "$." + self.label(field) if self.http else self.label(field)

    def setting(self, field: str, value: str) -> str:
        """How a user sets ``field`` to ``value`` at this door: ``--runtime hf-eager`` or ``runtime "hf-eager"``."""
        return f'{self.label(field)} "{value}"' if self.http else f"{self.label(field)} {value}"

    def fail(self, field: str, value: Any, problem: str, expected: str, fix: str = "") -> AdmissionError:
        shown = _show(value)
        message = f"{self.label(field)} {shown}: {problem}; expected {expected}" + (f"; {fix}" if fix else "")
        return AdmissionError(message, path=self.path(field))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


# -- the doors -----------------------------------------------------------------------------------------------------


def check_request(
    request: DeepSeekOCRAnalyticRequest,
    *,
    allow_remote_code: bool = False,
    snapshot_roots: Sequence[Path | str] = (),
) -> None:
    """Check every field of an HTTP request (names are JSON paths); raises :class:`AdmissionError`.

    Remote-code sources need ``allow_remote_code``; an ``hf-snapshot:`` folder must lie under one of
    ``snapshot_roots`` after resolving symlinks.  A routing histogram must come inline (``routing: histogram`` plus
    ``routing_histogram``): the service never opens a path a client names.
    """
    door = _Door(
        http=True,
        allow_remote_code=allow_remote_code,
        snapshot_roots=tuple(Path(os.path.realpath(root)) for root in snapshot_roots),
    )
    inputs = _Inputs(
        model=request.model_variant,
        workload_id=request.workload_profile_id,
        model_id=request.model_id,
        mode=request.mode,
        page_width=request.page_width,
        page_height=request.page_height,
        prompt_tokens=request.prompt_tokens,
        max_new_tokens=request.max_new_tokens,
        batch_size=request.batch_size,
        device=request.device,
        dtype=request.dtype,
        attention=request.attention,
        routing=request.routing,
        routing_histogram=getattr(request, "routing_histogram", None),
        profile_run_id=request.profile_run_id,
        runtime=request.runtime,
        text_only=bool(request.text_only),
    )
    _check(inputs, door)


def check_analysis_flags(
    *,
    model: str,
    workload_id: str,
    mode: str | None = None,
    page: tuple[int, int] | None = None,
    prompt_tokens: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    attention: str | None = None,
    routing: str | None = None,
    runtime: str | None = None,
    text_only: bool = False,
) -> None:
    """Check ``analyze``'s flags (names are flags); a ``histogram:FILE`` routing is read here, safely."""
    inputs = _Inputs(
        model=model,
        workload_id=workload_id,
        mode=mode,
        page_width=None if page is None else page[0],
        page_height=None if page is None else page[1],
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        attention=attention,
        routing=routing,
        runtime=runtime,
        text_only=text_only,
    )
    _check(inputs, _Door(http=False))


def check_model_source_flag(model: str | None, flag: str = "--model") -> None:
    """Check a ``--model`` value's syntax (built-in name, ``hf:ORG/NAME@REV``, ``hf-snapshot:PATH``)."""
    if model is None:
        return
    door = _Door(http=False)
    try:
        _check_source(model, door)
    except AdmissionError as exc:
        raise AdmissionError(str(exc).replace("--model", flag, 1), path=flag) from None


def check_sweep_flags(
    *,
    devices: Sequence[str],
    modes: Sequence[str],
    pages: Sequence[tuple[int, int]],
    batch_sizes: Sequence[int],
    max_new_tokens: Sequence[int],
    dtypes: Sequence[str],
    prompt_tokens: int,
    routing: str,
    runtime: str | None = None,
    attention: str | None = None,
) -> None:
    """Check ``sweep``'s flags: every listed value, the number of points, and the context of every combination."""
    door = _Door(http=False)
    if runtime is not None:
        _check_runtime(runtime, attention or "flash", door)
    for device in devices:
        _check_device(device, door)
    for dtype in dtypes:
        _check_dtype(dtype, door)
    for mode in modes:
        _check_choice("mode", mode, MODES, door)
    for width, height in pages:
        _check_int("page_width", width, 1, L.MAX_PAGE_SIDE_PX, door, "the page width in px")
        _check_int("page_height", height, 1, L.MAX_PAGE_SIDE_PX, door, "the page height in px")
    for batch in batch_sizes:
        _check_int("batch_size", batch, 1, L.MAX_BATCH_SIZE, door, "pages per forward")
    for length in max_new_tokens:
        _check_int("max_new_tokens", length, 1, L.MAX_NEW_TOKENS, door, "generated tokens")
    _check_int("prompt_tokens", prompt_tokens, 0, L.MAX_PROMPT_TOKENS, door, "prompt tokens")
    _check_routing(_Inputs(model=L.BUILTIN_V1_SOURCES[0], workload_id="", routing=routing), door)
    points = len(devices) * len(modes) * len(pages) * len(batch_sizes) * len(max_new_tokens) * len(dtypes)
    if points > L.MAX_SWEEP_POINTS:
        raise AdmissionError(
            f"sweep of {points} points: too many; expected at most {L.MAX_SWEEP_POINTS} "
            "(devices x modes x pages x batches x lengths x dtypes); split it into several sweeps",
            path="--device",
        )
    limit = L.MAX_CONTEXT_TOKENS[L.BUILTIN_V1_SOURCES[0]]
    for mode in modes:
        for page in pages:
            workload = _workload_or_fail(
                lambda m=mode, p=page: Workload.create(mode=m, page=p, prompt_tokens=prompt_tokens), door
            )
            for length in max_new_tokens:
                where = f"mode {mode}, page {page[0]}x{page[1]}"
                _check_context(workload.seq_len, length, limit, door, where, prompt_tokens=prompt_tokens)


def check_snapshot_path(model: str, roots: Sequence[Path | str], *, label: str = "model_variant") -> Path:
    """The resolved folder of ``hf-snapshot:PATH`` when it lies under one of ``roots`` (symlinks resolved, no
    ``..``); :class:`AdmissionError` otherwise."""
    door = _Door(http=True, snapshot_roots=tuple(Path(os.path.realpath(r)) for r in roots))
    return _snapshot_folder(model, door, label)


def inline_routing_text(histogram: Mapping[str, Any]) -> str:
    """The routing text of an inline histogram, as the analysis options carry it (``histogram:{...}``): canonical
    JSON, so the same counts give the same report id."""
    return "histogram:" + json.dumps(dict(histogram), sort_keys=True, separators=(",", ":"))


# -- the checks ----------------------------------------------------------------------------------------------------


def _check(inputs: _Inputs, door: _Door) -> None:
    kind = _check_source(inputs.model, door)
    if door.http:
        _check_model_id(inputs, kind, door)
        if inputs.profile_run_id is not None:
            _check_id("profile_run_id", inputs.profile_run_id, door, "a measurement run id")
    _check_choice("workload_id", inputs.workload_id, PRESETS, door)
    if inputs.mode is not None:
        _check_choice("mode", inputs.mode, OCR2_MODES if kind == "ocr2" else MODES, door, _mode_fix(kind))
    _check_page(inputs, door)
    if inputs.prompt_tokens is not None:
        _check_int("prompt_tokens", inputs.prompt_tokens, 0, L.MAX_PROMPT_TOKENS, door, "prompt tokens")
    if inputs.max_new_tokens is not None:
        _check_int("max_new_tokens", inputs.max_new_tokens, 1, L.MAX_NEW_TOKENS, door, "generated tokens")
    if inputs.batch_size is not None:
        _check_int("batch_size", inputs.batch_size, 1, L.MAX_BATCH_SIZE, door, "pages per forward")
    device = _check_device(inputs.device, door) if inputs.device is not None else None
    if inputs.dtype is not None:
        dtype = _check_dtype(inputs.dtype, door)
        spec = get_device(device) if device is not None else None
        if spec is not None and dtype not in spec.dtypes:
            raise door.fail(
                "dtype", inputs.dtype, f"device {spec.device_id} has no peak for it", "one of " + ", ".join(spec.dtypes)
            )
    _check_attention(inputs, kind, door)
    if inputs.runtime is not None:
        _check_runtime(inputs.runtime, inputs.attention or ("eager" if kind in ("hub", "snapshot") else "flash"), door)
    if inputs.text_only and kind != "v1":
        raise door.fail(
            "text_only",
            inputs.model,
            "text-only requests are traced for the built-in DeepSeek-OCR v1 sources only",
            "a built-in v1 model source",
            f"drop {door.label('text_only')}",
        )
    if inputs.text_only:
        _check_no_image_fields(inputs, door)
    _check_routing(inputs, door)
    _check_workload_context(inputs, kind, door)


def _check_str(field: str, value: Any, max_length: int, door: _Door) -> str:
    if not isinstance(value, str):
        raise door.fail(field, value, "not a string", "a string")
    if not value or len(value) > max_length:
        raise door.fail(field, value, f"length {len(value)}", f"1..{max_length} characters")
    return value


def _check_id(field: str, value: Any, door: _Door, what: str) -> str:
    _check_str(field, value, L.MAX_ID_LENGTH, door)
    if not _ID.fullmatch(value):
        raise door.fail(field, value, "not an id", f"{what}: letters, digits, '.', '_' or '-' (pattern {L.ID_PATTERN})")
    return str(value)


def _check_choice(field: str, value: Any, known: Mapping[str, Any], door: _Door, fix: str = "") -> str:
    _check_str(field, value, L.MAX_ID_LENGTH, door)
    if value not in known:
        raise door.fail(field, value, f"unknown {_NOUNS.get(field, field)}", "one of " + ", ".join(sorted(known)), fix)
    return str(value)


def _mode_fix(kind: str) -> str:
    if kind == "ocr2":
        return "DeepSeek-OCR-2 has its own modes (dynamic, single); leave the mode out for dynamic"
    return "DeepSeek-OCR v1 modes; `llm-perf-opt workloads` lists them"


def _check_int(field: str, value: Any, low: int, high: int, door: _Door, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise door.fail(field, value, "not an integer", f"{what}: an integer in {low}..{high}")
    if not low <= value <= high:
        raise door.fail(field, value, "out of range", f"{what}: an integer in {low}..{high}")
    return value


def _check_source(model: Any, door: _Door) -> str:
    """``v1`` (built-in), ``ocr2``, ``hub`` or ``snapshot``."""
    _check_str("model", model, L.MAX_SOURCE_LENGTH, door)
    if model in L.BUILTIN_V1_SOURCES:
        return "v1"
    if model == L.OCR2_SOURCE:
        return "ocr2"
    if not model.startswith(L.REMOTE_CODE_PREFIXES):
        known = ", ".join([*L.BUILTIN_V1_SOURCES, L.OCR2_SOURCE, "hf:ORG/NAME@REVISION", "hf-snapshot:PATH"])
        raise door.fail("model", model, "unknown model source", f"one of {known}")
    if door.http and not door.allow_remote_code:
        raise door.fail(
            "model",
            model,
            "runs code from outside this package and this server does not allow it",
            "a built-in variant (e.g. deepseek-ocr-v1-base)",
            "or restart the server with `llm-perf-opt serve --allow-remote-code --snapshot-root DIR`",
        )
    if model.startswith("hf:"):
        if not _HUB.fullmatch(model):
            raise door.fail(
                "model", model, "not a Hub source", f"hf:ORG/NAME[@REVISION] (pattern {L.HUB_SOURCE_PATTERN})"
            )
        return "hub"
    if door.http:
        _snapshot_folder(model, door, "model")
    elif model == "hf-snapshot:" or "\x00" in model:
        raise door.fail("model", model, "no snapshot folder", "hf-snapshot:PATH naming a Hugging Face snapshot folder")
    return "snapshot"


def _snapshot_folder(model: str, door: _Door, field: str) -> Path:
    raw = model.removeprefix("hf-snapshot:")
    if not raw or "\x00" in raw or ".." in Path(raw).parts or not Path(raw).is_absolute():
        raise door.fail(
            field,
            model,
            "not an absolute snapshot path without '..'",
            "hf-snapshot:/ABSOLUTE/PATH under a snapshot root",
        )
    if not door.snapshot_roots:
        raise door.fail(
            field,
            model,
            "this server has no snapshot roots",
            "a Hub source (hf:ORG/NAME@REVISION)",
            "or restart the server with `--snapshot-root DIR` naming the folder that holds the snapshots",
        )
    resolved = Path(os.path.realpath(raw))
    if not any(resolved == root or resolved.is_relative_to(root) for root in door.snapshot_roots):
        raise door.fail(
            field,
            model,
            "not under a snapshot root of this server (symlinks resolved)",
            "a snapshot folder under one of the server's --snapshot-root folders",
        )
    return resolved


def _check_model_id(inputs: _Inputs, kind: str, door: _Door) -> None:
    model_id = _check_str("model_id", inputs.model_id, L.MAX_MODEL_ID_LENGTH, door)
    if not _MODEL_ID.fullmatch(model_id):
        raise door.fail("model_id", model_id, "not a model id", f"ORG/NAME (pattern {L.MODEL_ID_PATTERN})")
    if kind in ("v1", "ocr2"):
        wanted = L.MODEL_IDS[inputs.model]
    elif kind == "hub":
        wanted = inputs.model.removeprefix("hf:").split("@", 1)[0]
    else:
        return  # a snapshot folder does not say which Hub repository it came from
    if model_id != wanted:
        raise door.fail(
            "model_id",
            model_id,
            f"does not match model_variant {inputs.model!r}",
            repr(wanted),
            "set model_id to the model the variant describes",
        )


def _check_page(inputs: _Inputs, door: _Door) -> None:
    if (inputs.page_width is None) != (inputs.page_height is None):
        field, other = ("page_width", "page_height") if inputs.page_height is None else ("page_height", "page_width")
        value = inputs.page_width if field == "page_width" else inputs.page_height
        raise door.fail(field, value, f"set without {door.label(other)}", "both page_width and page_height, or neither")
    if inputs.page_width is not None:
        _check_int("page_width", inputs.page_width, 1, L.MAX_PAGE_SIDE_PX, door, "the page width in px")
        _check_int("page_height", inputs.page_height, 1, L.MAX_PAGE_SIDE_PX, door, "the page height in px")


def _check_no_image_fields(inputs: _Inputs, door: _Door) -> None:
    """A text-only request has no image, so a resolution mode or a page size given with it would be ignored."""
    for field, value in (("mode", inputs.mode), ("page_width", inputs.page_width)):
        if value is not None:
            shown = value if field == "mode" else f"{inputs.page_width}x{inputs.page_height}"
            label, text_only = door.label(field), door.label("text_only")
            raise door.fail(
                field,
                shown,
                "has no effect on a text-only request (it has no image)",
                f"no {label} with {text_only}",
                f"drop {label} or drop {text_only}",
            )


def _check_device(device: Any, door: _Door) -> str:
    return _check_choice("device", device, dict.fromkeys(device_ids()), door, "`llm-perf-opt devices` lists them")


def _check_dtype(dtype: Any, door: _Door) -> str:
    _check_str("dtype", dtype, L.MAX_ID_LENGTH, door)
    try:
        return normalize_dtype(dtype)
    except UserError:
        raise door.fail("dtype", dtype, "unknown dtype", "one of " + ", ".join([*DTYPES, *DTYPE_ALIASES])) from None


def _check_attention(inputs: _Inputs, kind: str, door: _Door) -> None:
    if inputs.attention is None:
        return
    _check_choice("attention", inputs.attention, {"flash": 0, "eager": 0}, door)
    if kind in ("hub", "snapshot") and inputs.attention != "eager":
        raise door.fail(
            "attention",
            inputs.attention,
            "upstream v1 remote code implements attention as eager only",
            "eager (or leave it out) for hf: and hf-snapshot: sources",
        )


def _check_runtime(runtime: str, attention: str, door: _Door) -> None:
    _check_choice("runtime", runtime, RUNTIMES, door, "the inference runtimes of `llm_perf_opt.runtimes`")
    supported = RUNTIMES[runtime].attention
    if attention not in supported:
        raise door.fail(
            "runtime",
            runtime,
            f"runs {'/'.join(supported)} attention only, not {attention}",
            "a runtime that runs this attention",
            f"use {door.setting('runtime', 'hf-eager')}, or {door.setting('attention', supported[0])}",
        )


def _check_routing(inputs: _Inputs, door: _Door) -> None:
    routing, histogram = inputs.routing, inputs.routing_histogram
    if routing is None:
        if histogram is not None:
            raise door.fail("routing_histogram", "{...}", "given without routing 'histogram'", "routing: histogram")
        return
    _check_str("routing", routing, L.MAX_SOURCE_LENGTH, door)
    kind, _, arg = routing.partition(":")
    if door.http:
        if kind == "skewed" and not _ROUTING.fullmatch(routing):
            _check_skew(routing, arg, door)
            raise door.fail(
                "routing", routing, "skew not written as plain decimals", f"skewed:ALPHA with ALPHA like {_SKEW_FORM}"
            )
        if not _ROUTING.fullmatch(routing):
            raise door.fail(
                "routing",
                routing,
                "unknown routing (a histogram comes inline, never as a file name)",
                "balanced, skewed:ALPHA or histogram (with the counts in routing_histogram)",
            )
        if (routing == "histogram") != (histogram is not None):
            raise door.fail(
                "routing_histogram",
                None if histogram is None else "{...}",
                "routing 'histogram' and routing_histogram go together",
                "routing: histogram with routing_histogram {layer: [count per expert]}, or neither",
            )
        if histogram is not None:
            _check_histogram(histogram, inputs.model, door)
            return
    if kind == "skewed":
        _check_skew(routing, arg, door)
        return
    try:
        # CLI: balanced, or a histogram file read as a regular file under the size limit, with >= top-k experts a layer
        RoutingModel.parse(routing).check_top_k(_routing_top_k(inputs.model))
    except UserError as exc:
        raise AdmissionError(f"{door.label('routing')}: {exc}", path=door.path("routing")) from None


_SKEW_FORM = "1.5 (at most 2 digits before the point and 6 after)"


def _check_skew(routing: str, arg: str, door: _Door) -> None:
    """``skewed:ALPHA`` with a finite ALPHA in 0..MAX_SKEW_ALPHA (``1e309`` and ``nan`` are out of range)."""
    expected = f"skewed:ALPHA with ALPHA in 0..{L.MAX_SKEW_ALPHA:g}"
    try:
        alpha = float(arg)
    except ValueError:
        raise door.fail("routing", routing, "skew is not a number", expected) from None
    if not math.isfinite(alpha) or not 0 <= alpha <= L.MAX_SKEW_ALPHA:
        raise door.fail("routing", routing, "skew out of range", expected)


def _check_histogram(histogram: Any, model: str, door: _Door) -> None:
    field = "routing_histogram"
    if not isinstance(histogram, Mapping) or not histogram:
        raise door.fail(field, "{...}", "empty or not an object", "an object {layer index: [count per expert]}")
    config = _v1_config(model)
    layers = min(L.MAX_HISTOGRAM_LAYERS, config.num_hidden_layers if config else L.MAX_HISTOGRAM_LAYERS)
    experts = config.n_routed_experts if config else None
    if len(histogram) > layers:
        raise door.fail(field, f"{len(histogram)} layers", "too many layers", f"at most {layers}")
    for key, row in histogram.items():
        if not (isinstance(key, str) and key.isdigit() and len(key) <= 3 and int(key) < layers):
            raise door.fail(field, key, "not a layer index", f"a decimal layer index 0..{layers - 1}")
        where = f"{field}.{key}"
        if not isinstance(row, list) or not 0 < len(row) <= L.MAX_HISTOGRAM_EXPERTS:
            raise door.fail(where, "[...]", "not a list of counts", f"1..{L.MAX_HISTOGRAM_EXPERTS} counts")
        if experts is not None and len(row) != experts:
            raise door.fail(where, f"{len(row)} counts", "wrong number of experts", f"{experts} (the model's experts)")
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= L.MAX_HISTOGRAM_COUNT for c in row):
            raise door.fail(
                where, "[...]", "not all counts are integers in range", f"integers 0..{L.MAX_HISTOGRAM_COUNT}"
            )
        if sum(row) == 0:
            raise door.fail(where, "[0, ...]", "all zero", "at least one positive count")
    top_k = _routing_top_k(model)
    for key, row in histogram.items():
        if problem := too_few_experts(int(key), row, top_k):
            raise AdmissionError(f"{door.label(field)}.{key}: {problem}", path=f"{door.path(field)}.{key}")


def _routing_top_k(model: str) -> int:
    """Experts each token picks (top-k) in the model's MoE layers: v1's, or DeepSeek-OCR-2's decoder (v1 base's)."""
    return (_v1_config(model) or DeepseekOCRConfig.base()).num_experts_per_tok


def _v1_config(model: str) -> DeepseekOCRConfig | None:
    if model == "deepseek-ocr-v1-tiny":
        return DeepseekOCRConfig.tiny()
    if model == L.OCR2_SOURCE:
        return None  # checked against its own config when the build runs
    return DeepseekOCRConfig.base()


def _check_workload_context(inputs: _Inputs, kind: str, door: _Door) -> None:
    preset = PRESETS[inputs.workload_id]
    page = None
    if inputs.page_width is not None and inputs.page_height is not None:
        page = (inputs.page_width, inputs.page_height)
    prompt = inputs.prompt_tokens if inputs.prompt_tokens is not None else preset.prompt_tokens
    new = inputs.max_new_tokens if inputs.max_new_tokens is not None else preset.max_new_tokens
    batch = inputs.batch_size if inputs.batch_size is not None else preset.batch_size
    base = Workload.from_profile(preset)
    if kind == "ocr2":
        mode = inputs.mode or "dynamic"
        seq_len = _workload_or_fail(
            lambda: Ocr2Workload.create(
                mode=mode, page=page or base.page, prompt_tokens=prompt, max_new_tokens=new, batch_size=batch
            ),
            door,
        ).seq_len
    else:
        config = DeepseekOCRConfig.tiny() if inputs.model == "deepseek-ocr-v1-tiny" else None
        workload = _workload_or_fail(
            lambda: Workload.create(
                mode=inputs.mode or base.mode,
                page=page or base.page,
                prompt_tokens=prompt,
                max_new_tokens=new,
                batch_size=batch,
                config=config,
            ),
            door,
        )
        seq_len = attrs.evolve(workload, text_only=bool(inputs.text_only)).seq_len  # no image: S = 1 + prompt
    limit = L.MAX_CONTEXT_TOKENS.get(inputs.model, L.MAX_CONTEXT_TOKENS["remote-v1"])
    where = "a text-only request" if inputs.text_only else f"workload {inputs.workload_id}"
    _check_context(seq_len, new, limit, door, where, prompt_tokens=prompt, text_only=bool(inputs.text_only))


def _workload_or_fail(make: Any, door: _Door) -> Any:
    try:
        return make()
    except UserError as exc:
        raise AdmissionError(f"{exc}", path=door.path("page")) from None


def _check_context(
    seq_len: int, new_tokens: int, limit: int, door: _Door, where: str, *, prompt_tokens: int, text_only: bool = False
) -> None:
    """``S + N - 1`` within the context; else one line naming the generated tokens, or the prompt where the prefill
    alone is past it."""
    kv = seq_len + new_tokens - 1
    if kv > limit:
        most = limit - seq_len + 1
        shorter = "use a shorter prompt" if text_only else "use a smaller page, mode or prompt"
        fix = f"lower {door.label('max_new_tokens')} to at most {most}, or {shorter}" if most >= 1 else shorter
        field, value = ("prompt_tokens", prompt_tokens) if most < 1 else ("max_new_tokens", new_tokens)
        raise door.fail(
            field,
            value,
            f"S + N - 1 = {seq_len} + {new_tokens} - 1 = {kv} tokens is past the model's context ({where})",
            f"S + N - 1 <= {limit}",
            fix,
        )
