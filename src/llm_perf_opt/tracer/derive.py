"""Another output length without tracing: a trace's decode re-integrated from the decode steps it traced (torch-free).

A trace whose decode was fitted (``decode_method == "affine-fit"``: steps ``1 < mid < n0`` traced, every counter
affine in the step) keeps a :class:`DecodeBasis`: the prefill's node data, the three steps' node data and each op's
bucket (none when the three steps are not on one line).  For ``N`` new tokens (``n = N - 1`` decode steps, same
shapes otherwise; ``n = 0`` keeps the prefill alone) :func:`derive_output_length` integrates the same three steps
over ``n`` steps (:func:`~llm_perf_opt.tracer.decode_fit.fit_steps`: sums in closed
form; a peak is ``max(v(1), v(n))`` and the KV held ``v(n)`` of the affine ``v`` through the traced steps) and rolls
the counters up as the tracer does (:class:`~llm_perf_opt.tracer.rollup.StageRollup`); what needs the module tree
(names, classes, weights, repetition) comes from the trace unchanged.  This is exactly what a trace at ``N`` computes
when its own three steps lie on the same lines, which affinity in the step means.

Refused (:class:`DeriveError`, the caller traces instead): more steps than the basis covers (a far step off the line
limits it to the traced ones), a sum or an end value that is not an integer, a node set that differs.
Left out: prefill costs that depend on ``N`` (none in the built-in model or DeepSeek-OCR-2: a cache sized ``S + N``
is allocated outside the counted passes; tests compare derived and traced trees at several ``N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve, field, frozen

from llm_perf_opt.core import Cost
from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.decode_fit import AffineFitError, check_affine, fit_steps
from llm_perf_opt.tracer.ledger import build_ledger
from llm_perf_opt.tracer.nodedata import NodeData, Pattern
from llm_perf_opt.tracer.result import TracedNode, TraceResult
from llm_perf_opt.tracer.rollup import StageRollup, active_stages, node_id, root_counts

__all__ = [
    "NO_DECODE_NOTE",
    "DecodeBasis",
    "DeriveError",
    "basis_from_json",
    "basis_to_json",
    "data_from_json",
    "data_to_json",
    "decode_basis",
    "derive_output_length",
    "nodes_with_counts",
]


NO_DECODE_NOTE = "max_new_tokens = 1: no decode step"
"""The decode note of a trace with no decode step."""


class DeriveError(Exception):
    """The trace cannot be re-integrated over another output length; the message says why."""


@frozen(kw_only=True)
class DecodeBasis:
    """What a fitted trace keeps to be re-integrated over another number of decode steps."""

    prefill: NodeData = field(metadata={"help": "node data of the prefill pass (vision, projector, prefill stages)"})
    steps: Mapping[int, NodeData] = field(metadata={"help": "decode step (1-based) -> its node data: the 3 traced"})
    decode_steps: int = field(metadata={"help": "n0, the decode steps of the trace the basis came from"})
    covers: int = field(metadata={"help": "the most decode steps it answers for (n0, or the farthest step traced)"})
    buckets: Mapping[str, tuple[str, str, str]] = field(metadata={"help": "op -> (bucket, rule, reason)"})


def decode_basis(
    prefill: NodeData,
    steps: Mapping[int, NodeData],
    far: tuple[int, NodeData] | None,
    *,
    decode_steps: int,
    buckets: Mapping[str, tuple[str, str, str]],
) -> DecodeBasis | None:
    """The basis of a fitted decode of ``decode_steps`` steps (``steps``: the three traced).  With ``far`` (a step
    beyond them) on the same lines as the three - every counter, call, peak and KV level affine through all four -
    the basis keeps the first, the middle and the far step and covers every length up to it; else the three traced
    steps, covering up to ``decode_steps``.  A peak is convex in the step (the module docstring of
    :mod:`~llm_perf_opt.tracer.decode_fit`), so affine at three or more points means affine in between.  None when
    even the three are not on one line (a peak with a kink between them: no other length can be derived)."""
    try:
        check_affine(steps)
    except AffineFitError:
        return None
    if far is not None:
        step, data = far
        try:
            check_affine({**steps, step: data})
        except AffineFitError:
            pass
        else:
            first, mid = sorted(steps)[:2]
            kept = {first: steps[first], mid: steps[mid], step: data}
            return DecodeBasis(prefill=prefill, steps=kept, decode_steps=decode_steps, covers=step, buckets=buckets)
    return DecodeBasis(prefill=prefill, steps=steps, decode_steps=decode_steps, covers=decode_steps, buckets=buckets)


def derive_output_length(trace: TraceResult, basis: DecodeBasis, *, max_new_tokens: int, workload: str) -> TraceResult:
    """``trace`` (the trace ``basis`` came from) at ``max_new_tokens`` new tokens; ``workload`` is the new
    workload's description.  Raises :class:`DeriveError` (see the module docstring)."""
    n = max_new_tokens - 1
    if n < 0:
        raise DeriveError(f"N = {max_new_tokens}: at least one token is generated")
    if n > basis.covers:
        raise DeriveError(f"{n} decode steps is past the {basis.covers} the cached steps cover")
    data = NodeData()
    data.add(basis.prefill)
    if n:
        try:
            data.add(fit_steps(basis.steps, n))
        except AffineFitError as exc:
            raise DeriveError(f"not affine in the step: {exc.where}") from exc
    counted = frozenset(op for op, (bucket, _, _) in basis.buckets.items() if bucket == "counted")
    rollups = {stage: StageRollup(stage, data, counted) for stage in active_stages(data)}
    nodes = nodes_with_counts(trace.nodes, rollups, decode_steps=n)
    ledger, unsupported = build_ledger(data, basis.buckets)
    return evolve(
        trace,
        workload=workload,
        max_new_tokens=max_new_tokens,
        decode_method="affine-fit" if n else "none",
        decode_note=f"derived from the cached decode basis; every counter affine, integrated over {n} "
        f"step{'s' if n != 1 else ''}"
        if n
        else NO_DECODE_NOTE,
        nodes=nodes,
        op_ledger=ledger,
        unsupported=unsupported,
    )


def nodes_with_counts(
    skeleton: Mapping[str, TracedNode], rollups: Mapping[str, StageRollup], *, decode_steps: int
) -> dict[str, TracedNode]:
    """The nodes of ``skeleton`` with the counted fields of ``rollups`` (the same node ids, less the decode stage's
    without a decode step; else DeriveError)."""
    if not decode_steps:
        skeleton = {nid: node for nid, node in skeleton.items() if node.stage != "decode"}
    where: dict[str, tuple[StageRollup, Pattern]] = {
        node_id(stage, pat): (roll, pat) for stage, roll in rollups.items() for pat in roll.nodes
    }
    if set(where) | {"root"} != set(skeleton):
        raise DeriveError("the derived node set differs from the traced one")
    counts = root_counts(rollups.values())
    nodes: dict[str, TracedNode] = {}
    for nid, node in skeleton.items():
        if nid == "root":
            nodes[nid] = evolve(
                node,
                children=tuple(stage for stage in node.children if stage in rollups),
                calls=1 + decode_steps,
                cost=counts.cost,
                by_category=counts.by_category,
                peak_activation_bytes=counts.peak_activation_bytes,
                kv_cache_bytes=counts.kv_cache_bytes,
            )
            continue
        roll, pat = where[nid]
        by_category = roll.category_costs(pat)
        nodes[nid] = evolve(
            node,
            calls=roll.calls.get(pat, 0),
            cost=Cost.total(by_category.values()),
            by_category=by_category,
            peak_activation_bytes=roll.peaks.get(pat, 0),
            kv_cache_bytes=roll.kv.get(pat, 0),
            repetition_count=decode_steps if nid == "decode" else node.repetition_count,
        )
    return nodes


# -- JSON (the trace cache stores a basis next to its trace) ------------------------------------------------------


def basis_to_json(basis: DecodeBasis) -> dict[str, Any]:
    """``basis`` as JSON-able data (named counters, patterns as lists)."""
    return {
        "prefill": data_to_json(basis.prefill),
        "steps": [{"step": i, "data": data_to_json(d)} for i, d in sorted(basis.steps.items())],
        "decode_steps": basis.decode_steps,
        "covers": basis.covers,
        "buckets": {op: list(b) for op, b in sorted(basis.buckets.items())},
    }


def basis_from_json(raw: Mapping[str, Any]) -> DecodeBasis:
    """The basis :func:`basis_to_json` wrote (KeyError/TypeError/ValueError on anything else)."""
    buckets = {str(op): (str(b[0]), str(b[1]), str(b[2])) for op, b in raw["buckets"].items()}
    return DecodeBasis(
        prefill=data_from_json(raw["prefill"]),
        steps={int(s["step"]): data_from_json(s["data"]) for s in raw["steps"]},
        decode_steps=int(raw["decode_steps"]),
        covers=int(raw["covers"]),
        buckets=buckets,
    )


def data_to_json(data: NodeData) -> dict[str, Any]:
    """``data`` as JSON-able data (named counters, patterns as lists)."""
    return {
        "table": [
            {"stage": st, "pattern": list(pat), "category": cat, "op": op, "counters": row.as_dict()}
            for (st, pat, cat, op), row in data.table.items()
        ],
        **{
            name: [{"stage": st, "pattern": list(pat), "value": v} for (st, pat), v in getattr(data, name).items()]
            for name in ("calls", "peaks", "kv_held")
        },
    }


def data_from_json(raw: Mapping[str, Any]) -> NodeData:
    """The node data :func:`data_to_json` wrote."""
    data = NodeData()
    for row in raw["table"]:
        key = (str(row["stage"]), tuple(map(str, row["pattern"])), str(row["category"]), str(row["op"]))
        data.table[key] = Counters.from_mapping(row["counters"])
    for name in ("calls", "peaks", "kv_held"):
        target: dict[tuple[str, Pattern], int] = getattr(data, name)
        for item in raw[name]:
            target[(str(item["stage"]), tuple(map(str, item["pattern"])))] = int(item["value"])
    return data
