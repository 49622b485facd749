"""Published measurements of DeepSeek-OCR (``benchmarks/published/*.yaml``): a torch-free loader.

One file per source (format: docs/validation-runtimes.md, "Record format"): where the number was published, the
conditions as the source states them (in our words), and per point the model, runtime, device, dtype, mode, token
counts, the metric and value, what the source states and what we had to infer, and the point's ``role``: ``fit``
(a constant was fitted on it) or ``holdout`` (its error is reported).  At most half of all points may be ``fit``.
Every problem is a one-line :class:`~llm_perf_opt.errors.UserError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import device_ids

__all__ = [
    "KINDS",
    "METRICS",
    "MODELS",
    "ROLES",
    "PublishedPoint",
    "PublishedSource",
    "default_published_dir",
    "load_published",
    "load_published_file",
]

KINDS = ("single-request", "serving")
MODELS = ("deepseek-ocr-v1-base", "deepseek-ocr-2")
RUNTIME_IDS = ("vllm", "sglang", "hf-eager", "hf-flash", "hf-cuda-graph")
METRICS = (
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "output_tokens_per_s",
    "pages_per_s",
    "pages_per_day",
    "peak_memory_gib",
)
ROLES = ("holdout", "fit")


@frozen(kw_only=True)
class PublishedPoint:
    """One published number with the conditions it was measured under."""

    point_id: str
    kind: str
    model: str
    runtime: str
    device: str
    dtype: str
    mode: str = field(metadata={"help": "resolution mode (tiny ... gundam, single/dynamic for OCR-2) or text-only"})
    metric: str
    value: float
    role: str
    page: tuple[int, int] | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    concurrency: int | None = None
    stated: tuple[str, ...] = ()
    inferred: tuple[str, ...] = ()
    conditions_stated: bool = field(
        default=True, metadata={"help": "false when the source leaves out a condition the number depends on"}
    )

    @property
    def text_only(self) -> bool:
        """A request with no image."""
        return self.mode == "text-only"


@frozen(kw_only=True)
class PublishedSource:
    """One source file: where and when, the conditions as stated, its points."""

    path: str
    source: str
    title: str
    publisher: str
    accessed: str
    conditions: str
    points: tuple[PublishedPoint, ...]


def default_published_dir() -> Path:
    """``benchmarks/published`` of this checkout (the repository root above ``src``)."""
    return Path(__file__).resolve().parents[3] / "benchmarks" / "published"


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise UserError(f"{where}: missing {key!r}")
    return data[key]


def _choice(data: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> str:
    value = str(_need(data, key, where))
    if value not in allowed:
        raise UserError(f"{where}: {key} {value!r} is not one of: {', '.join(allowed)}")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _strings(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _point(data: Any, where: str) -> PublishedPoint:
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: a point must be a mapping")
    where = f"{where} point {data.get('id', '?')!r}"
    page = data.get("page")
    if page is not None and not (
        isinstance(page, list) and len(page) == 2 and all(isinstance(v, int) and v > 0 for v in page)
    ):
        raise UserError(f"{where}: page must be [width, height] in px, got {page!r}")
    value = _need(data, "value", where)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UserError(f"{where}: value must be a positive number, got {value!r}")
    device = _choice(data, "device", device_ids(), where)
    return PublishedPoint(
        point_id=str(_need(data, "id", where)),
        kind=_choice(data, "kind", KINDS, where),
        model=_choice(data, "model", MODELS, where),
        runtime=_choice(data, "runtime", RUNTIME_IDS, where),
        device=device,
        dtype=str(_need(data, "dtype", where)),
        mode=str(_need(data, "mode", where)),
        metric=_choice(data, "metric", METRICS, where),
        value=float(value),
        role=_choice(data, "role", ROLES, where),
        page=(page[0], page[1]) if page else None,
        prompt_tokens=_opt_int(data, "prompt_tokens", where),
        output_tokens=_opt_int(data, "output_tokens", where),
        concurrency=_opt_int(data, "concurrency", where),
        stated=_strings(data, "stated", where),
        inferred=_strings(data, "inferred", where),
        conditions_stated=bool(data.get("conditions_stated", True)),
    )


def load_published_file(path: Path) -> PublishedSource:
    """Read one source file; a bad file is a one-line :class:`UserError`."""
    where = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{where}: cannot read published measurements ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping with source, title, publisher, accessed, conditions, points")
    points = data.get("points")
    if not isinstance(points, list) or not points:
        raise UserError(f"{where}: points must be a non-empty list")
    return PublishedSource(
        path=path.name,
        source=str(_need(data, "source", where)),
        title=str(_need(data, "title", where)),
        publisher=str(_need(data, "publisher", where)),
        accessed=str(_need(data, "accessed", where)),
        conditions=str(_need(data, "conditions", where)).strip(),
        points=tuple(_point(p, where) for p in points),
    )


def load_published(directory: Path | None = None) -> tuple[PublishedSource, ...]:
    """Every ``*.yaml`` under ``directory`` (default :func:`default_published_dir`), sorted by file name.

    Point ids must be unique across files and at most half of all points may have ``role: fit``.
    """
    folder = directory or default_published_dir()
    sources = tuple(load_published_file(p) for p in sorted(folder.glob("*.yaml")))
    seen: dict[str, str] = {}
    for src in sources:
        for point in src.points:
            if point.point_id in seen:
                raise UserError(f"{src.path}: point id {point.point_id!r} is also in {seen[point.point_id]}")
            seen[point.point_id] = src.path
    fits = sum(p.role == "fit" for s in sources for p in s.points)
    if fits * 2 > len(seen):
        raise UserError(f"{fits} of {len(seen)} published points have role fit; at most half may")
    return sources
