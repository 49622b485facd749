"""Which tensors make a traced node's peak: the live set at the node's highest point, by producing op (torch).

A :class:`~llm_perf_opt.tracer.result.TracedNode`'s ``peak_activation_bytes`` is the highest live total of
non-parameter, non-KV tensor storage while the node runs (maximum over its calls, the members of its group and the
traced decode steps).  :func:`node_live_sets` re-runs a driver's passes on the meta device under
:class:`~llm_perf_opt.measure.live_bytes.LiveBytes` with a watch on every member module of the asked nodes, and
returns for each node the live set (bytes per producing op) at its highest point - the prefill pass for vision,
projector and prefill nodes, the last decode step (the longest cache: the largest decode live sets) for decode nodes.
Comparing two models' live sets node by node (:meth:`LiveSet.difference`) names the ops whose tensors one model keeps
alive and the other does not - how the built-in and upstream traces are reconciled.

A node whose module fires no hook of its own (a ``ModuleList``; a module run through ``.forward``) or whose module
spans several stages (the core ``model``, split by stage anchors) takes the live set of the child node that reaches
its peak; when no child does (the peak is reached by ops the container runs itself), it has no live set.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from llm_perf_opt.measure.live_bytes import LiveSet, live_sets_at_peaks
from llm_perf_opt.tracer.result import TraceResult

__all__ = ["member_paths", "node_live_sets", "peak_differences"]

_GROUP = re.compile(r"\{([^}]*)\}")


def member_paths(pattern: str) -> list[str]:
    """``model.layers.{1..3}.mlp`` -> ``model.layers.1.mlp`` ... ``model.layers.3.mlp`` (``{a,b}`` lists too)."""
    parts = _GROUP.split(pattern)
    choices: list[list[str]] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            choices.append([part])
        elif ".." in part:
            lo, hi = part.split("..")
            choices.append([str(n) for n in range(int(lo), int(hi) + 1)])
        else:
            choices.append(part.split(","))
    return ["".join(combo) for combo in itertools.product(*choices)]


def peak_differences(reference: TraceResult, candidate: TraceResult) -> dict[str, int]:
    """``module_id -> candidate peak - reference peak`` for every node both traces have whose peaks differ."""
    out = {}
    for module_id, node in reference.nodes.items():
        other = candidate.nodes.get(module_id)
        if other is not None and other.peak_activation_bytes != node.peak_activation_bytes:
            out[module_id] = other.peak_activation_bytes - node.peak_activation_bytes
    return out


def node_live_sets(
    model: nn.Module, driver: Any, trace: TraceResult, module_ids: Iterable[str]
) -> Mapping[str, LiveSet]:
    """The live set at each node's highest point (module nodes only; stage and root nodes are skipped)."""
    wanted = [trace.node(m) for m in module_ids]
    by_pass: dict[str, dict[str, list[str]]] = {"prefill": {}, "decode": {}}
    for node in wanted:
        if not node.path:
            continue
        which = "decode" if node.stage == "decode" else "prefill"
        by_pass[which][node.module_id] = member_paths(node.path)
    stages_of: dict[tuple[str, bool], set[str]] = {}  # (path, decode pass?) -> stages it runs in, in that pass
    for node in trace.nodes.values():
        stages_of.setdefault((node.path, node.stage == "decode"), set()).add(node.stage)
    own: dict[str, LiveSet] = {}
    for which, members in by_pass.items():
        if not members or (which == "decode" and not driver.decode_steps):
            continue
        inputs = driver.prefill() if which == "prefill" else driver.step(driver.decode_steps)
        paths = [p for ps in members.values() for p in ps]
        sets = live_sets_at_peaks(model, inputs.run, paths, inputs=inputs.live)
        for module_id, ps in members.items():
            best = max((sets[p] for p in ps), key=lambda s: s.peak_bytes)
            if best.peak_bytes >= 0 and len(stages_of[(trace.node(module_id).path, which == "decode")]) == 1:
                own[module_id] = best
    return {m: found for m in own.keys() | {n.module_id for n in wanted} if (found := _resolve(trace, own, m))}


def _resolve(trace: TraceResult, own: Mapping[str, LiveSet], module_id: str) -> LiveSet | None:
    """The node's own live set, else that of the child reaching the node's peak (recursively), else None."""
    if module_id in own:
        return own[module_id]
    node = trace.node(module_id)
    for child in node.children:
        if trace.node(child).peak_activation_bytes == node.peak_activation_bytes:
            found = _resolve(trace, own, child)
            if found is not None:
                return found
    return None
