"""What-if sweeps, torch-free: device x mode/page x batch x max_new_tokens x dtype -> one row per point.

Counts come from a *cost function* (``config, workload, attention=, routing=`` -> :class:`WorkloadCosts`), by default
the analytic model (:func:`analytic_workload_costs`). It runs once per distinct workload (page, batch, N); each
result is flattened once (:class:`~llm_perf_opt.perf.compiled.CompiledTree`) and re-timed for every (device, dtype)
- no model is ever built, so a thousand points take well under the 2 s budget.

A (device, dtype) pair the device has no peak for (fp8 on Ampere) yields no row; it is listed in
:attr:`SweepResult.skipped` with the reason, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from attrs import asdict, evolve, field, fields, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import BYTES_PER_ELEMENT, get_device, normalize_dtype
from llm_perf_opt.perf.analytic_adapter import workload_costs_from_analytic
from llm_perf_opt.perf.compiled import WorkloadCosts
from llm_perf_opt.perf.efficiency import EXECUTION_MODES, DeviceProfile, default_profile
from llm_perf_opt.perf.memory import capacity_check, footprint_at_dtype
from llm_perf_opt.perf.roofline import Rates
from llm_perf_opt.perf.stages import StageTimes
from llm_perf_opt.perf.throughput import ExpectedCoverageRouting, throughput
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.modes import get_mode
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = [
    "CostFunction",
    "SweepResult",
    "SweepRow",
    "SweepSpec",
    "rows_to_csv",
    "rows_to_markdown",
    "run_sweep",
]


class CostFunction(Protocol):
    """``cost_fn(config, workload, *, attention, routing) -> WorkloadCosts``."""

    def __call__(
        self, config: DeepseekOCRConfig, workload: Workload, *, attention: str, routing: RoutingModel
    ) -> WorkloadCosts: ...


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _pages(value: Iterable[tuple[str, tuple[int, int]]]) -> tuple[tuple[str, tuple[int, int]], ...]:
    return tuple((str(mode), (int(page[0]), int(page[1]))) for mode, page in value)


def _nonempty(instance: Any, attribute: Any, value: tuple[Any, ...]) -> None:
    if not value:
        raise UserError(f"sweep {attribute.name} must list at least one value")


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any, Any, str], None]:
    def check(instance: Any, attribute: Any, value: str) -> None:
        if value not in allowed:
            raise UserError(f"unknown sweep {attribute.name} {value!r}; expected one of: {', '.join(allowed)}")

    return check


@frozen(kw_only=True)
class SweepSpec:
    """The grid: every combination of the five axes is one point."""

    devices: tuple[str, ...] = field(converter=_tuple, validator=_nonempty, metadata={"help": "catalog ids"})
    pages: tuple[tuple[str, tuple[int, int]], ...] = field(
        converter=_pages, validator=_nonempty, metadata={"help": "(mode, (width, height) px) pairs"}
    )
    batch_sizes: tuple[int, ...] = field(converter=_tuple, validator=_nonempty, metadata={"help": "B values"})
    max_new_tokens: tuple[int, ...] = field(converter=_tuple, validator=_nonempty, metadata={"help": "N values"})
    dtypes: tuple[str, ...] = field(converter=_tuple, validator=_nonempty, metadata={"help": "dtypes"})
    prompt_tokens: int = field(default=9, metadata={"help": "text tokens after BOS"})
    attention: str = field(
        default="flash", validator=_one_of(("flash", "eager")), metadata={"help": "attention kernel: flash or eager"}
    )
    routing: RoutingModel = field(
        factory=ExpectedCoverageRouting,
        metadata={"help": "MoE routing model (default: uniform picks, E*(1-(1-k/E)^T) experts per call)"},
    )
    execution: str = field(
        default="eager",
        validator=_one_of(EXECUTION_MODES),
        metadata={"help": "eager or cuda-graph (per-kernel overhead)"},
    )

    @property
    def num_points(self) -> int:
        """Number of grid points (before skipping unsupported device/dtype pairs)."""
        n = len(self.devices) * len(self.pages) * len(self.batch_sizes) * len(self.max_new_tokens)
        return n * len(self.dtypes)


@frozen(kw_only=True)
class SweepRow:
    """One point: inputs, stage latencies (ms), throughput and memory (GB = 1e9 B)."""

    device: str
    dtype: str
    mode: str
    page_width: int
    page_height: int
    batch_size: int
    max_new_tokens: int
    seq_len: int
    vision_ms: float
    projector_ms: float
    prefill_ms: float
    ttft_ms: float
    tpot_ms: float
    decode_ms: float
    end_to_end_ms: float
    tokens_per_s: float
    pages_per_s: float
    pages_per_day: float
    weights_gb: float
    kv_cache_gb: float
    activations_gb: float
    memory_gb: float
    fits: bool
    max_batch: int


@frozen(kw_only=True)
class SweepResult:
    """Rows in grid order (page, batch, N, device, dtype) and the skipped (device, dtype) pairs with reasons."""

    rows: tuple[SweepRow, ...]
    skipped: tuple[str, ...]


def analytic_workload_costs(
    config: DeepseekOCRConfig, workload: Workload, *, attention: str, routing: RoutingModel
) -> WorkloadCosts:
    """The default cost function: the analytic model's counts for ``workload``."""
    return workload_costs_from_analytic(config, workload, attention=attention, routing=routing)


def _resolve_rates(
    spec: SweepSpec, profiles: Mapping[str, DeviceProfile] | None
) -> tuple[list[tuple[str, str, Rates | None]], list[str]]:
    """Every (device, dtype) with its rates, or None and a reason when the device lacks the dtype."""
    out: list[tuple[str, str, Rates | None]] = []
    skipped: list[str] = []
    for device_id in spec.devices:
        device = get_device(device_id)
        profile = (profiles or {}).get(device.device_id) or default_profile(spec.execution)
        for dtype in spec.dtypes:
            name = normalize_dtype(dtype)
            if name not in device.peak_flops:
                skipped.append(f"{device.device_id} {name}: the device has no {name} peak ({', '.join(device.dtypes)})")
                out.append((device.device_id, name, None))
                continue
            out.append((device.device_id, name, Rates.for_device(device, dtype=name, profile=profile)))
    return out, skipped


def _row(workload: Workload, mode: str, costs: WorkloadCosts, stage_s: Mapping[str, float], rates: Rates) -> SweepRow:
    stages = StageTimes.from_stage_seconds(stage_s, decode_steps=workload.decode_steps)
    rate = throughput(stages, B=workload.batch_size, N=workload.max_new_tokens)
    footprint = footprint_at_dtype(
        weight_bytes=costs.weight_bytes,
        kv_cache_bytes=costs.kv_cache_bytes,
        peak_activation_bytes=costs.peak_activation_bytes,
        batch_size=workload.batch_size,
        counted_dtype=costs.counted_dtype,
        dtype=rates.dtype,
    )
    check = capacity_check(footprint, get_device(rates.device_id))
    ms = stages.as_ms()
    return SweepRow(
        device=rates.device_id,
        dtype=rates.dtype,
        mode=mode,
        page_width=workload.page_width,
        page_height=workload.page_height,
        batch_size=workload.batch_size,
        max_new_tokens=workload.max_new_tokens,
        seq_len=workload.seq_len,
        vision_ms=ms["vision_ms"],
        projector_ms=ms["projector_ms"],
        prefill_ms=ms["prefill_ms"],
        ttft_ms=ms["ttft_ms"],
        tpot_ms=ms["tpot_ms"],
        decode_ms=ms["decode_ms"],
        end_to_end_ms=ms["end_to_end_ms"],
        tokens_per_s=rate.tokens_per_s,
        pages_per_s=rate.pages_per_s,
        pages_per_day=rate.pages_per_day,
        weights_gb=footprint.weights_bytes / 1e9,
        kv_cache_gb=footprint.kv_cache_bytes / 1e9,
        activations_gb=footprint.peak_activation_bytes / 1e9,
        memory_gb=footprint.total_bytes / 1e9,
        fits=check.fits,
        max_batch=check.max_batch,
    )


def run_sweep(
    spec: SweepSpec,
    *,
    config: DeepseekOCRConfig | None = None,
    cost_fn: CostFunction | Callable[..., WorkloadCosts] | None = None,
    profiles: Mapping[str, DeviceProfile] | None = None,
    stage_fn: Callable[[Workload, Rates], Mapping[str, float]] | None = None,
) -> SweepResult:
    """Evaluate every point of ``spec``.

    ``cost_fn`` defaults to the analytic model; ``profiles`` maps device id -> calibrated
    :class:`DeviceProfile` (others use the defaults for ``spec.execution``); ``stage_fn(workload, rates)``, when
    given, times each point instead of the compiled tree (a runtime kernel model: ``sweep --runtime``; the counts
    still give memory). Unknown devices, dtypes or modes are
    :class:`UserError` s listing the allowed values, raised before any work.
    """
    model = config if config is not None else DeepseekOCRConfig.base()
    fn = cost_fn if cost_fn is not None else analytic_workload_costs
    rates_list, skipped = _resolve_rates(spec, profiles)
    for mode, _ in spec.pages:
        get_mode(mode)
    rows: list[SweepRow] = []
    for mode, page in spec.pages:
        for batch in spec.batch_sizes:
            for n_new in spec.max_new_tokens:
                workload = Workload.create(
                    mode=mode,
                    page=page,
                    prompt_tokens=spec.prompt_tokens,
                    max_new_tokens=n_new,
                    batch_size=batch,
                    config=model,
                )
                costs = fn(model, workload, attention=spec.attention, routing=spec.routing)
                compiled = costs.compiled
                counted_bytes = BYTES_PER_ELEMENT[normalize_dtype(costs.counted_dtype)]
                for _, _, rates in rates_list:
                    if rates is None:
                        continue
                    rates = evolve(rates, bytes_scale=BYTES_PER_ELEMENT[rates.dtype] / counted_bytes)
                    stage_s = stage_fn(workload, rates) if stage_fn is not None else compiled.stage_seconds(rates)
                    rows.append(_row(workload, mode, costs, stage_s, rates))
    return SweepResult(rows=tuple(rows), skipped=tuple(skipped))


COLUMNS: tuple[str, ...] = tuple(a.name for a in fields(SweepRow))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _plain(value)
    return str(value)


def _plain(value: float) -> str:
    """``%.6g`` without its exponent: 6 significant digits, but every integer digit of a large number (pages/day
    1179860, not 1.17986e+06) and leading zeros for a tiny one (0.0000123456)."""
    text = f"{value:.6g}"
    if "e" not in text or not math.isfinite(value):
        return text
    decimals = max(0, 5 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _no_decode(column: str, data: Mapping[str, Any]) -> bool:
    """TPOT of a point with no decode step (``max_new_tokens`` 1): there is no value, not a 0."""
    return column == "tpot_ms" and data["max_new_tokens"] <= 1


def rows_to_csv(rows: Sequence[SweepRow], columns: Sequence[str] = COLUMNS) -> str:
    """CSV with a header row; floats with 6 significant digits and no exponent, booleans as yes/no; TPOT is empty
    where no decode step runs (``max_new_tokens`` 1)."""
    _check_columns(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        data = asdict(row)
        writer.writerow(["" if _no_decode(c, data) else _cell(data[c]) for c in columns])
    return buffer.getvalue()


def rows_to_markdown(rows: Sequence[SweepRow], columns: Sequence[str] = COLUMNS) -> str:
    """A GitHub Markdown table (numbers right-aligned), one format per column and never an exponent: times (ms) with
    the decimals the column's smallest value needs, GB with 2 decimals, pages/day as whole numbers with separators.
    A configuration that does not fit the device shows ``-`` for its throughput columns (``fits`` says ``no``), a point
    with no decode step (``max_new_tokens`` 1) ``-`` for its TPOT."""
    _check_columns(columns)
    numeric = {c for c in columns if c not in {"device", "dtype", "mode", "fits"}}
    data = [asdict(row) for row in rows]
    formats = {c: _column_format(c, [d[c] for d in data]) for c in columns}
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in numeric else "---" for c in columns) + "|",
    ]
    for d in data:
        cells = [
            "-" if (c in _THROUGHPUT_COLUMNS and not d["fits"]) or _no_decode(c, d) else formats[c](d[c])
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_THROUGHPUT_COLUMNS = frozenset({"tokens_per_s", "pages_per_s", "pages_per_day"})


def _column_format(column: str, values: Sequence[Any]) -> Callable[[Any], str]:
    """One formatter for every cell of ``column`` (fixed decimals chosen from the column's values)."""
    if column == "fits":
        return lambda v: "yes" if v else "no"
    if not values or not isinstance(values[0], float):
        return lambda v: f"{v:,}" if isinstance(v, int) else str(v)
    if column.endswith("_ms"):
        nonzero = [abs(v) for v in values if v]
        smallest = min(nonzero) if nonzero else 1.0
        decimals = min(3, max(0, 2 - math.floor(math.log10(smallest))))
    elif column.endswith("_gb"):
        decimals = 2
    elif column == "pages_per_day":
        decimals = 0
    elif column == "pages_per_s":
        decimals = 3
    else:
        decimals = 1
    return lambda v: f"{v:,.{decimals}f}"


def _check_columns(columns: Sequence[str]) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise UserError(f"unknown sweep column(s) {', '.join(unknown)}; expected some of: {', '.join(COLUMNS)}")
