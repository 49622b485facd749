"""Our matmul FLOPs against the counters people already trust: torch's ``FlopCounterMode`` and fvcore.

One prefill pass and one decode step of a model source (tiny variant by default), per stage and per top-level
module.  Every row carries the reason for any difference, computed, not assumed:

* ``FlopCounterMode`` (on the meta device, the model our tracer traces) counts matmul, convolution and attention
  products at 2 FLOPs per multiply-accumulate, dense: it must equal our ``matmul_flops`` exactly.
* fvcore's ``FlopCountAnalysis`` traces with TorchScript, which cannot run on meta (the SAM convolutions fail), so it
  runs on CPU with the tiny variant's random weights, one module at a time (a module whose forward takes the KV-cache
  object cannot be traced).  It counts one multiply-add as one FLOP and has no formula for
  ``scaled_dot_product_attention`` and counts layer norms as FLOPs; the row is explained when
  ``ours == 2 x (fvcore - its layer-norm count) + SDPA FLOPs`` (the SDPA calls of that module measured during the
  same CPU run, ``4 B H L_q L_k D`` each).

fvcore is optional (``pip install 'llm-perf-opt[fvcore]'``); ``torch`` is needed (this module is torch-side).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from attrs import evolve, field, frozen
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from llm_perf_opt.core.paths import split_module_path
from llm_perf_opt.errors import UserError
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import preset_workload

__all__ = ["COUNTERS", "CrossRow", "crosscheck", "expand_group"]

COUNTERS = ("flopcounter", "fvcore")
"""Counters ``crosscheck`` knows."""

_FVCORE_MODULES = ("model.sam_model", "model.vision_model", "model.projector", "lm_head")
"""Top-level modules fvcore can trace on their own (tensor arguments only)."""


@frozen(kw_only=True)
class CrossRow:
    """One stage or module of one pass: our matmul FLOPs, a counter's, their ratio and why they differ."""

    counter: str = field(metadata={"help": "flopcounter | fvcore"})
    scope: str = field(metadata={"help": "stage | module"})
    name: str = field(metadata={"help": "our node id (prefill pass and decode step 1)"})
    ours: int = field(metadata={"help": "our matmul FLOPs (dense, 2 per multiply-accumulate)"})
    theirs: int | None = field(metadata={"help": "the counter's FLOPs; None when it cannot count this row"})
    reason: str = field(metadata={"help": "why the numbers differ (or that they are equal)"})
    explained: bool = field(metadata={"help": "the difference is fully accounted for by the reason"})

    @property
    def ratio(self) -> float | None:
        """``theirs / ours`` (None when either is missing or ours is 0)."""
        return None if self.theirs is None or not self.ours else self.theirs / self.ours


@frozen(kw_only=True)
class _Verdict:
    """What one counter says about one scope: its FLOPs and why they differ from ours."""

    scope: str
    name: str
    theirs: int | None
    reason: str
    explained: bool


def _rows(counter: str, ours: Mapping[str, int], verdicts: Sequence[_Verdict]) -> list[CrossRow]:
    """One :class:`CrossRow` per verdict of ``counter``, with our FLOPs beside the counter's."""
    return [
        CrossRow(
            counter=counter,
            scope=v.scope,
            name=v.name,
            ours=ours[v.name],
            theirs=v.theirs,
            reason=v.reason,
            explained=v.explained,
        )
        for v in verdicts
    ]


def expand_group(path: str) -> list[str]:
    """``model.layers.{1..3}.mlp`` -> ``model.layers.1.mlp``, ``...2...``, ``...3...``; comma sets likewise."""
    paths = [""]
    for part in split_module_path(path):
        if part.startswith("{") and part.endswith("}"):
            body = part[1:-1]
            if ".." in body:
                lo, hi = body.split("..")
                members = [str(i) for i in range(int(lo), int(hi) + 1)]
            else:
                members = body.split(",")
        else:
            members = [part]
        paths = [f"{p}.{m}" if p else m for p in paths for m in members]
    return paths


def crosscheck(
    *, model: str = "deepseek-ocr-v1-tiny", workload_id: str = "dsocr-tiny-v1", counters: Sequence[str] = COUNTERS
) -> list[CrossRow]:
    """Rows for every counter in ``counters`` (a one-line :class:`UserError` for an unknown one, or fvcore missing)."""
    unknown = [c for c in counters if c not in COUNTERS]
    if unknown:
        raise UserError(f"unknown counter(s) {', '.join(unknown)}; expected some of: {', '.join(COUNTERS)}")
    source = resolve_model_source(model)
    workload = evolve(preset_workload(workload_id), max_new_tokens=2)  # prefill + one decode step
    trace = trace_workload(source, workload, attention="eager")
    ours = {nid: node.cost.matmul_flops for nid, node in trace.nodes.items()}
    scopes = _scopes(trace)
    rows: list[CrossRow] = []
    if "flopcounter" in counters:
        rows += _flopcounter_rows(source, workload, ours, scopes)
    if "fvcore" in counters:
        rows += _fvcore_rows(source, workload, ours, scopes)
    return rows


def _scopes(trace: Any) -> list[tuple[str, str, list[str]]]:
    """(scope, our node id, module paths it covers): the stages, then the stage nodes' children."""
    out: list[tuple[str, str, list[str]]] = []
    stages = [nid for nid in trace.root.children if nid in ("vision", "projector", "prefill", "decode")]
    out += [("stage", nid, []) for nid in stages]
    for stage in stages:
        for child in _top_modules(trace, stage):
            out.append(("module", child, expand_group(child.split("/", 1)[1])))
    return out


def _top_modules(trace: Any, node_id: str) -> list[str]:
    """The stage's top-level modules: its children, with the ``model`` body and containers (a node that is never
    called itself, such as ``model.layers``) replaced by the modules in them."""
    out = []
    for child in trace.nodes[node_id].children:
        node = trace.nodes[child]
        if node.children and (child.split("/", 1)[1] == "model" or node.calls == 0):
            out += _top_modules(trace, child)
        else:
            out.append(child)
    return out


def _passes(source: Any, workload: Any, device: str, dtype: torch.dtype) -> tuple[nn.Module, Any, Any]:
    model = source.build(device=device, dtype=dtype, attn_implementation="eager")
    inputs = source.make_inputs(workload, device=device, dtype=dtype)
    return model, inputs, inputs.new_cache()


def _flopcounter_rows(
    source: Any, workload: Any, ours: Mapping[str, int], scopes: Sequence[tuple[str, str, list[str]]]
) -> list[CrossRow]:
    model, inputs, cache = _passes(source, workload, "meta", torch.bfloat16)
    counts: dict[str, dict[str, int]] = {}
    passes: tuple[tuple[str, dict[str, Any]], ...] = (
        ("prefill", inputs.prefill.kwargs()),
        ("decode", inputs.decode_step(1).kwargs()),
    )
    for name, kwargs in passes:
        with FlopCounterMode(display=False) as counter:
            model(**kwargs, past_key_values=cache)
        root = type(model).__name__
        counts[name] = {
            ("" if key in (root, "Global") else key.removeprefix(f"{root}.")): int(sum(by_op.values()))
            for key, by_op in counter.get_flop_counts().items()
        }
    verdicts = []
    for scope, nid, paths in scopes:
        stage = nid.split("/", 1)[0]
        table = counts["decode" if stage == "decode" else "prefill"]
        theirs = _stage_total(table, stage) if scope == "stage" else sum(table.get(p, 0) for p in paths)
        equal = theirs == ours[nid]
        reason = (
            "equal: the same convention (2 FLOPs per multiply-accumulate, dense attention)"
            if equal
            else f"differs by {ours[nid] - theirs:+,} FLOPs: not explained"
        )
        verdicts.append(_Verdict(scope=scope, name=nid, theirs=theirs, reason=reason, explained=equal))
    return _rows("flopcounter", ours, verdicts)


def _stage_total(table: Mapping[str, int], stage: str) -> int:
    vision = table.get("model.sam_model", 0) + table.get("model.vision_model", 0)
    projector = table.get("model.projector", 0)
    if stage == "vision":
        return vision
    if stage == "projector":
        return projector
    return table.get("", 0) - (vision + projector if stage == "prefill" else 0)


_RECORDED: Mapping[Callable[..., Any], str] = {
    torch.nn.functional.scaled_dot_product_attention: "sdpa",
    torch.einsum: "einsum",
}
"""Calls whose FLOPs are recorded per module (fvcore skips the first and estimates the second its own way)."""


class _CallRecorder(TorchFunctionMode):
    """Adds up, per kind of :data:`_RECORDED` call, the FLOPs ``FlopCounterMode`` counts inside it (on meta: SDPA's
    two batched products ``4 B H L_q L_k D``; an einsum's products)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: dict[str, int] = {}

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kind = _RECORDED.get(func)
        if kind is None:
            return func(*args, **(kwargs or {}))
        with FlopCounterMode(display=False) as counter:
            out = func(*args, **(kwargs or {}))
        self.flops[kind] = self.flops.get(kind, 0) + int(counter.get_total_flops())
        return out


def _fvcore_rows(
    source: Any, workload: Any, ours: Mapping[str, int], scopes: Sequence[tuple[str, str, list[str]]]
) -> list[CrossRow]:
    try:
        # lazy: fvcore is an optional extra, loaded only when asked for
        from fvcore.nn import FlopCountAnalysis  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise UserError("fvcore is not installed: pip install 'llm-perf-opt[fvcore]', or --with flopcounter") from None
    recorded: dict[str, dict[str, int]] = {}
    meta, meta_inputs, meta_cache = _passes(source, workload, "meta", torch.bfloat16)
    with contextlib.ExitStack() as hooks:  # SDPA FLOPs as counted on meta, where SDPA runs as two batched products
        for path in _FVCORE_MODULES:
            hooks.enter_context(_capture(meta.get_submodule(path), path, {}, recorded))
        meta(**meta_inputs.prefill.kwargs(), past_key_values=meta_cache)
    torch.manual_seed(0)
    model, inputs, cache = _passes(source, workload, "cpu", torch.float32)
    captured: dict[str, tuple[Any, ...]] = {}
    with contextlib.ExitStack() as hooks:
        for path in _FVCORE_MODULES:
            hooks.enter_context(_capture(model.get_submodule(path), path, captured, None))
        with torch.no_grad():
            model(**inputs.prefill.kwargs(), past_key_values=cache)
    theirs: dict[str, int] = {}
    norms: dict[str, int] = {}
    einsums: dict[str, int] = {}
    for path, args in captured.items():
        analysis = FlopCountAnalysis(model.get_submodule(path), args)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad():
            theirs[path] = int(analysis.total())
        by_op = analysis.by_operator()
        norms[path] = int(sum(v for op, v in by_op.items() if "norm" in op))
        einsums[path] = int(by_op.get("einsum", 0))
    verdicts = []
    for scope, nid, paths in scopes:
        if scope != "module" or nid.startswith("decode/") or not paths or paths[0] not in theirs:
            if scope == "module":
                verdicts.append(
                    _Verdict(
                        scope=scope,
                        name=nid,
                        theirs=None,
                        explained=True,
                        reason="not counted: TorchScript cannot trace a forward that takes the KV-cache object",
                    )
                )
            continue
        path = paths[0]
        count, norm, their_einsum = theirs[path], norms[path], einsums[path]
        attention = recorded.get(path, {}).get("sdpa", 0)
        our_einsum = recorded.get(path, {}).get("einsum", 0)
        rest = ours[nid] - 2 * (count - norm - their_einsum) - attention - our_einsum
        explained = rest == 0
        reason = "MAC convention: fvcore counts a multiply-add as 1 FLOP (x2)"
        if attention:
            reason += f"; no formula for scaled_dot_product_attention ({attention:,} FLOPs here)"
        if norm:
            reason += f"; counts layer norms ({norm:,}) that we count as vector FLOPs, not matmul"
        if their_einsum and 2 * their_einsum != our_einsum:
            reason += (
                f"; estimates the einsums with numpy's einsum_path ({their_einsum:,} MACs where the products are "
                f"{our_einsum // 2:,})"
            )
        if not explained:
            reason += f"; {rest:+,} FLOPs not explained"
        verdicts.append(_Verdict(scope=scope, name=nid, theirs=count, reason=reason, explained=explained))
    return _rows("fvcore", ours, verdicts)


@contextlib.contextmanager
def _capture(
    module: nn.Module, path: str, captured: dict[str, tuple[Any, ...]], recorded: dict[str, dict[str, int]] | None
) -> Iterator[None]:
    """Record ``module``'s first call arguments and (when ``recorded`` is given) the FLOPs of the SDPA and einsum
    calls inside it."""
    modes: list[_CallRecorder] = []

    def pre(_mod: nn.Module, args: tuple[Any, ...]) -> None:
        captured.setdefault(path, args)
        if recorded is not None:
            mode = _CallRecorder()
            cast(Any, mode).__enter__()
            modes.append(mode)

    def post(_mod: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        if recorded is not None:
            mode = modes.pop()
            cast(Any, mode).__exit__(None, None, None)
            mine = recorded.setdefault(path, {})
            for kind, flops in mode.flops.items():
                mine[kind] = mine.get(kind, 0) + flops

    handles = [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
