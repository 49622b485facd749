"""Compare two reports (or two trees), torch-free: added, removed and changed nodes, and per-node metric deltas.

Inputs (:func:`load_snapshot`): a report folder (its ``model.json``), a ``model.json`` file, or a tree listing from
``llm-perf-opt tree`` (``--flat`` JSON lines, or the grouped view's ``--format json``).  Both sides must be of the
same kind.  Structural changes (class, repetition, constructor parameters) always count; numeric metrics (FLOPs,
bytes, time, memory, calls, parameter counts) count when they differ by more than a relative ``tolerance``:
``|a - b| > tolerance * max(|a|, |b|)``.  Two snapshots are *equal* when nothing counts.

A report folder's ``report.yaml`` (read when it sits beside ``model.json``) adds the header facts (model, source
revision, workload, device, dtype, attention, runtime, profile) and the headline numbers (TTFT, TPOT, end to end,
pages/day, peak memory, max batch); a change in either counts.  ``counts_only`` compares the tree shape and the
counters alone: class names by their last component (``deepencoder.Block`` = ``llm_perf_opt...sam.Block``),
constructor parameters only where both sides record them, no time, memory-capacity or header facts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from attrs import field, frozen

from llm_perf_opt.errors import UserError

__all__ = [
    "COUNT_METRICS",
    "DEFAULT_TOLERANCE",
    "FACTS",
    "HEADLINE",
    "Change",
    "Delta",
    "NodeRecord",
    "ReportDiff",
    "Snapshot",
    "diff_snapshots",
    "load_snapshot",
    "snapshot_from_mapping",
]

DEFAULT_TOLERANCE = 1e-6
"""Relative tolerance: absorbs the 9-significant-digit rounding of report floats, nothing more."""

REPORT_ID = "(report)"
"""Pseudo node id for report-level quantities (workload, predicted total)."""

# model.json metric field -> (our metric name, factor to SI)
_METRICS: Mapping[str, tuple[str, float]] = {
    "calls": ("calls", 1.0),
    "total_flops_tflops": ("flops", 1e12),
    "total_io_tb": ("bytes", 1e12),
    "total_time_ms": ("time_s", 1e-3),
    "memory_weights_gb": ("weight_bytes", 1e9),
    "memory_activations_gb": ("activation_bytes", 1e9),
    "memory_kvcache_gb": ("kv_bytes", 1e9),
}
COUNT_METRICS = ("calls", "flops", "bytes", "weight_bytes", "kv_bytes", "params", "own_params")
"""What ``counts_only`` compares per node."""

FACTS: tuple[str, ...] = ("model", "source revision", "workload", "device", "dtype", "attention", "runtime", "profile")
"""Header facts of a report, in display order."""

HEADLINE: Mapping[str, str] = {
    "ttft_s": "TTFT",
    "tpot_s": "TPOT",
    "end_to_end_s": "end to end",
    "pages_per_day": "pages/day",
    "peak_memory_bytes": "peak memory",
    "max_batch": "max batch",
}
"""Headline metrics (report.yaml) -> display name, in display order."""

_WORKLOAD_KEYS = ("profile_id", "mode", "page_width", "page_height", "seq_len", "max_new_tokens", "batch_size")


@frozen(kw_only=True)
class NodeRecord:
    """One node as compared: identity, structure and numeric metrics (SI units)."""

    module_id: str
    class_name: str
    repetition: str = "none"
    repetition_count: int | None = None
    constructor_params: Mapping[str, Any] = field(factory=dict)
    metrics: Mapping[str, float] = field(factory=dict)


@frozen(kw_only=True)
class Snapshot:
    """One side of a diff."""

    kind: str = field(metadata={"help": "report | tree"})
    label: str = field(metadata={"help": "where it came from (as given)"})
    report_id: str | None = None
    header: Mapping[str, Any] = field(factory=dict, metadata={"help": "report-level facts (workload, variant)"})
    totals: Mapping[str, float] = field(factory=dict, metadata={"help": "report-level metrics"})
    nodes: Mapping[str, NodeRecord] = field(factory=dict)
    facts: Mapping[str, str] = field(factory=dict, metadata={"help": "FACTS -> value (reports only)"})


@frozen(kw_only=True)
class Change:
    """A structural difference of one node (or of the report header): ``field`` went from ``a`` to ``b``."""

    module_id: str
    field: str
    a: Any
    b: Any


@frozen(kw_only=True)
class Delta:
    """A numeric difference beyond the tolerance; ``rel = (b - a) / |a|`` (None when ``a`` is 0)."""

    module_id: str
    metric: str
    a: float
    b: float

    @property
    def rel(self) -> float | None:
        return (self.b - self.a) / abs(self.a) if self.a else None


@frozen(kw_only=True)
class ReportDiff:
    """Everything that differs between ``a`` and ``b``."""

    a: Snapshot
    b: Snapshot
    tolerance: float
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    deltas: tuple[Delta, ...] = ()
    counts_only: bool = False

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changes or self.deltas)

    def nodes_with_differences(self) -> list[str]:
        """Every node id that differs (not the report header), in a stable order: added, removed, changed, then
        metric deltas."""
        seen: dict[str, None] = {}
        for nid in (
            *self.added,
            *self.removed,
            *(c.module_id for c in self.changes),
            *(d.module_id for d in self.deltas),
        ):
            if nid != REPORT_ID:
                seen.setdefault(nid, None)
        return list(seen)

    def innermost(self) -> list[str]:
        """Differing nodes none of whose descendants differ: where a change starts (its ancestors follow it)."""
        nodes = self.nodes_with_differences()
        return [n for n in nodes if not any(_is_descendant(other, n) for other in nodes if other != n)]


def _is_descendant(node: str, ancestor: str) -> bool:
    """By id: ``root`` holds everything, a stage its ``<stage>/...`` ids, a path its ``<path>.`` extensions."""
    return ancestor == "root" or node.startswith((ancestor + "/", ancestor + "."))


# -- loading ---------------------------------------------------------------------------------------------------


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a report folder, a ``model.json`` or a tree listing; anything else is a one-line :class:`UserError`."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.json"
        if not p.is_file():
            raise UserError(f"{path} is a folder without model.json; pass a report folder written by analyze")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; pass a report folder, a model.json or a tree listing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    snapshot = snapshot_from_mapping(_parse(text, str(path)), label=str(path))
    side = p.parent / "report.yaml"
    if snapshot.kind == "report" and side.is_file():
        snapshot = with_report_yaml(snapshot, _read_yaml(side))
    return snapshot


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc}; regenerate the report with analyze") from None
    return data if isinstance(data, Mapping) else {}


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


def with_report_yaml(snapshot: Snapshot, report: Mapping[str, Any]) -> Snapshot:
    """``snapshot`` with the header facts and headline numbers of its ``report.yaml``."""
    options = _get(report, "report", "options") or {}
    workload = _get(report, "workload") or {}
    page = workload.get("page") or ["?", "?"]
    facts = dict(snapshot.facts)
    facts.update(
        {
            "device": str(_get(report, "device", "device_id") or "-"),
            "dtype": str(_get(report, "device", "dtype") or "-"),
            "attention": str(_get(report, "report", "attention") or "-"),
            "runtime": str(_get(report, "report", "runtime") or options.get("runtime") or "hf-eager"),
            "profile": str(_get(report, "device", "profile", "source") or "-"),
            "workload": f"{workload.get('profile_id') or snapshot.facts.get('workload', '-')}: "
            f"{workload.get('mode', '?')} {page[0]}x{page[1]}, "
            f"S={workload.get('seq_len', '?')}, N={workload.get('max_new_tokens', '?')}, "
            f"batch {workload.get('batch_size', '?')}",
        }
    )
    stages = _get(report, "time", "stages_ms") or {}
    totals = dict(snapshot.totals)
    for key in ("ttft", "tpot", "end_to_end"):
        if isinstance(stages.get(f"{key}_ms"), int | float):
            totals[f"{key}_s"] = float(stages[f"{key}_ms"]) * 1e-3
    per_day = _get(report, "time", "throughput", "pages_per_day")
    memory = _get(report, "memory") or {}
    for key, value in (
        ("pages_per_day", per_day),
        ("peak_memory_bytes", memory.get("total_bytes")),
        ("max_batch", memory.get("max_batch")),
    ):
        if isinstance(value, int | float):
            totals[key] = float(value)
    header = dict(snapshot.header)
    header.update({f"fact.{k}": v for k, v in facts.items() if k not in ("model", "workload", "source revision")})
    return Snapshot(
        kind=snapshot.kind,
        label=snapshot.label,
        report_id=snapshot.report_id,
        header=header,
        totals=totals,
        nodes=snapshot.nodes,
        facts=facts,
    )


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:  # JSON lines (tree --flat)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{where} is not JSON or JSON lines ({exc.msg} at line {exc.lineno}); expected model.json or a tree listing"
        ) from None


def snapshot_from_mapping(data: Any, *, label: str) -> Snapshot:
    """A snapshot from parsed JSON: a ``model.json`` object, or a list of tree records."""
    if isinstance(data, Mapping) and "modules" in data and "module_metrics" in data:
        return _from_model(data, label)
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        if all("path" in r and "class_name" in r for r in data):
            return _from_flat_tree(data, label)
        if all("module_id" in r and "class" in r for r in data):
            return _from_grouped_tree(data, label)
    raise UserError(
        f"{label} is neither a report (model.json with modules and module_metrics) nor a tree listing "
        "(llm-perf-opt tree --flat, or tree --format json)"
    )


def _from_model(data: Mapping[str, Any], label: str) -> Snapshot:
    try:
        metrics = {m["module_id"]: m for m in data["module_metrics"]}
        nodes = {}
        for mod in data["modules"]:
            nid = mod["module_id"]
            row = metrics.get(nid, {})
            scaled = {name: float(row[key]) * factor for key, (name, factor) in _METRICS.items() if key in row}
            nodes[nid] = _grouped_node(nid, str(mod["qualified_class_name"]), mod, scaled)
        workload = data.get("workload") or {}
        header = {f"workload.{k}": workload.get(k) for k in _WORKLOAD_KEYS if k in workload}
        spec = data.get("model") or {}
        header["model_variant"] = spec.get("model_variant")
        header["fact.source revision"] = spec.get("hf_revision") or "built-in"
        total = data.get("predicted_total_time_ms")
        facts = {
            "model": str(spec.get("model_variant") or "-"),
            "source revision": str(spec.get("hf_revision") or "built-in"),
            "workload": str(workload.get("profile_id") or "-"),
        }
        return Snapshot(
            kind="report",
            label=label,
            report_id=data.get("report_id"),
            header=header,
            totals={"predicted_total_time_s": float(total) * 1e-3} if total is not None else {},
            nodes=nodes,
            facts=facts,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(
            f"{label}: malformed model.json ({type(exc).__name__}: {exc}); regenerate it with analyze"
        ) from None


def _from_flat_tree(records: Sequence[Mapping[str, Any]], label: str) -> Snapshot:
    nodes = {}
    for r in records:
        nid = str(r["path"]) or "(root)"
        metrics = {k: float(r[k]) for k in ("params", "own_params") if isinstance(r.get(k), int | float)}
        nodes[nid] = NodeRecord(module_id=nid, class_name=str(r["class_name"]), metrics=metrics)
    return Snapshot(kind="tree", label=label, nodes=nodes)


def _from_grouped_tree(records: Sequence[Mapping[str, Any]], label: str) -> Snapshot:
    nodes = {}
    for r in records:
        nid = str(r["module_id"])
        metrics = {k: float(r[k]) for k in ("params", "calls") if isinstance(r.get(k), int | float)}
        nodes[nid] = _grouped_node(nid, str(r["class"]), r, metrics)
    return Snapshot(kind="tree", label=label, nodes=nodes)


def _grouped_node(nid: str, class_name: str, record: Mapping[str, Any], metrics: dict[str, float]) -> NodeRecord:
    """A node of a grouped tree with its repetition and constructor parameters, which model.json's modules and
    ``tree --format json`` records write under the same keys."""
    return NodeRecord(
        module_id=nid,
        class_name=class_name,
        repetition=str(record.get("repetition", "none")),
        repetition_count=record.get("repetition_count"),
        constructor_params=dict(record.get("constructor_params") or {}),
        metrics=metrics,
    )


# -- comparing -------------------------------------------------------------------------------------------------


def _differs(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) > tolerance * max(abs(a), abs(b))


def short_class(name: str) -> str:
    """``deepencoder.Block`` -> ``Block``: a class name without its module prefix."""
    return name.rsplit(".", 1)[-1]


def _node_changes(a: NodeRecord, b: NodeRecord, *, counts_only: bool = False) -> list[Change]:
    out = []
    for name in ("class_name", "repetition", "repetition_count"):
        va, vb = getattr(a, name), getattr(b, name)
        same = short_class(va) == short_class(vb) if counts_only and name == "class_name" else va == vb
        if not same:
            out.append(Change(module_id=a.module_id, field=name, a=va, b=vb))
    keys = set(a.constructor_params) | set(b.constructor_params)
    if counts_only:  # constructor extras (a key only one side records) do not count
        keys = set(a.constructor_params) & set(b.constructor_params)
    for key in sorted(keys):
        va, vb = a.constructor_params.get(key), b.constructor_params.get(key)
        if va != vb:
            out.append(Change(module_id=a.module_id, field=f"constructor_params.{key}", a=va, b=vb))
    return out


def _metric_deltas(nid: str, a: Mapping[str, float], b: Mapping[str, float], tolerance: float) -> list[Delta]:
    out = []
    for metric in sorted(set(a) | set(b)):
        va, vb = a.get(metric, 0.0), b.get(metric, 0.0)
        if _differs(va, vb, tolerance):
            out.append(Delta(module_id=nid, metric=metric, a=va, b=vb))
    return out


def diff_snapshots(
    a: Snapshot, b: Snapshot, *, tolerance: float = DEFAULT_TOLERANCE, counts_only: bool = False
) -> ReportDiff:
    """Compare ``a`` (before) with ``b`` (after); node order follows ``a`` then the nodes only ``b`` has.

    ``counts_only``: tree shape and :data:`COUNT_METRICS` only (see the module docstring)."""
    if not tolerance >= 0:
        raise UserError(f"tolerance must be >= 0 (a relative difference such as 0.01), got {tolerance}")
    if a.kind != b.kind:
        raise UserError(f"cannot compare a {a.kind} ({a.label}) with a {b.kind} ({b.label}); give two of one kind")
    header_keys = sorted(set(a.header) | set(b.header))
    if counts_only:
        header_keys = [k for k in header_keys if k.startswith("workload.") and k != "workload.profile_id"]
    changes = [
        Change(module_id=REPORT_ID, field=key, a=a.header.get(key), b=b.header.get(key))
        for key in header_keys
        if a.header.get(key) != b.header.get(key)
    ]
    deltas = [] if counts_only else _metric_deltas(REPORT_ID, a.totals, b.totals, tolerance)
    for nid, node in a.nodes.items():
        other = b.nodes.get(nid)
        if other is None:
            continue
        changes += _node_changes(node, other, counts_only=counts_only)
        mine, theirs = node.metrics, other.metrics
        if counts_only:
            mine = {k: v for k, v in mine.items() if k in COUNT_METRICS}
            theirs = {k: v for k, v in theirs.items() if k in COUNT_METRICS}
        deltas += _metric_deltas(nid, mine, theirs, tolerance)
    return ReportDiff(
        a=a,
        b=b,
        tolerance=tolerance,
        added=tuple(nid for nid in b.nodes if nid not in a.nodes),
        removed=tuple(nid for nid in a.nodes if nid not in b.nodes),
        changes=tuple(changes),
        deltas=tuple(deltas),
        counts_only=counts_only,
    )
