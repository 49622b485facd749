"""Golden trees: the module tree and every node's counters of one traced workload, as JSON (torch-free).

``third_party/<repo>/<revision>/golden/<workload>.json`` holds one per pinned revision and workload; comparing a new
trace with it names every node that appeared, disappeared, changed class, repetition, calls, weights or counters.
This is what a CI gate for a new upstream revision checks (``llm-perf-opt check`` builds on it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llm_perf_opt.errors import ConfigError
from llm_perf_opt.tracer.result import TracedNode, TraceResult

__all__ = ["GOLDEN_FORMAT", "compare_golden", "golden_from_trace", "read_golden", "write_golden"]

GOLDEN_FORMAT = "llm-perf-opt-golden/1"


def _node(node: TracedNode) -> dict[str, Any]:
    return {
        "class": node.qualified_class_name,
        "stage": node.stage,
        "parent": node.parent_id,
        "repetition": node.repetition,
        "repetition_count": node.repetition_count,
        "calls": node.calls,
        "weight_bytes": node.weight_bytes,
        "kv_cache_bytes": node.kv_cache_bytes,
        "cost": node.cost.as_dict(),
    }


def golden_from_trace(trace: TraceResult, *, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The golden record of ``trace``: tree, per-node counters, per-stage totals; ``source`` adds provenance."""
    stages = {sid: trace.nodes[sid].cost.as_dict() for sid in trace.root.children}
    return {
        "format": GOLDEN_FORMAT,
        "source": dict(source or {}),
        "model": trace.model,
        "workload": trace.workload,
        "seq_len": trace.seq_len,
        "max_new_tokens": trace.max_new_tokens,
        "attention": trace.attention,
        "routing": trace.routing,
        "decode_method": trace.decode_method,
        "stages": stages,
        "unsupported": sorted(u.op for u in trace.unsupported),
        "nodes": {module_id: _node(node) for module_id, node in trace.nodes.items()},
    }


def write_golden(path: Path, golden: Mapping[str, Any]) -> None:
    """Write sorted JSON, one line per node (stable bytes for the same golden, line diffs name nodes)."""
    head = {k: v for k, v in golden.items() if k != "nodes"}
    nodes = golden.get("nodes", {})
    lines = [f" {json.dumps(k)}: {json.dumps(nodes[k], sort_keys=True)}" for k in sorted(nodes)]
    body = json.dumps(head, indent=1, sort_keys=True)[:-2]
    text = body + ',\n "nodes": {\n' + ",\n".join(" " + line for line in lines) + "\n }\n}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def read_golden(path: Path) -> dict[str, Any]:
    """Read a golden file; a missing file or another format is a one-line ConfigError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read golden {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"golden {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != GOLDEN_FORMAT:
        raise ConfigError(f"golden {path} is not a {GOLDEN_FORMAT} file; regenerate it with scripts/upstream-goldens")
    return data


def _diff_node(
    module_id: str, want: Mapping[str, Any], got: Mapping[str, Any], *, counts_only: bool = False
) -> list[str]:
    out = []
    if counts_only:  # class names by their last component: deepencoder.Block = ...deepseek_ocr_v1.sam.Block
        want = {**want, "class": str(want.get("class", "")).rsplit(".", 1)[-1]}
        got = {**got, "class": str(got.get("class", "")).rsplit(".", 1)[-1]}
    for key in (
        "class",
        "stage",
        "parent",
        "repetition",
        "repetition_count",
        "calls",
        "weight_bytes",
        "kv_cache_bytes",
    ):
        if want.get(key) != got.get(key):
            out.append(f"{module_id}: {key} {want.get(key)!r} -> {got.get(key)!r}")
    want_cost, got_cost = want.get("cost", {}), got.get("cost", {})
    for counter in sorted(set(want_cost) | set(got_cost)):
        if want_cost.get(counter) != got_cost.get(counter):
            out.append(f"{module_id}: {counter} {want_cost.get(counter)} -> {got_cost.get(counter)}")
    return out


def compare_golden(golden: Mapping[str, Any], candidate: Mapping[str, Any], *, counts_only: bool = False) -> list[str]:
    """Every difference between two golden records (``candidate`` usually from :func:`golden_from_trace`);
    ``counts_only`` compares class names without their module prefix."""
    out: list[str] = []
    for key in ("seq_len", "max_new_tokens", "attention", "routing"):
        if golden.get(key) != candidate.get(key):
            out.append(f"workload {key} {golden.get(key)!r} -> {candidate.get(key)!r} (not the same workload)")
    want, got = golden.get("nodes", {}), candidate.get("nodes", {})
    out += [f"{m}: node removed" for m in sorted(set(want) - set(got))]
    out += [f"{m}: node added" for m in sorted(set(got) - set(want))]
    for module_id in sorted(set(want) & set(got)):
        out += _diff_node(module_id, want[module_id], got[module_id], counts_only=counts_only)
    if sorted(golden.get("unsupported", [])) != sorted(candidate.get("unsupported", [])):
        out.append(f"unsupported ops {golden.get('unsupported')} -> {candidate.get('unsupported')}")
    return out
