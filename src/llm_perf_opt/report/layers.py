"""``layers/<Class>.md``: one page per analysed layer class, rendered from an :class:`AnalysisResult`.

Each page says what the class is in DeepSeek-OCR, its configuration here (constructor parameters of its nodes),
its FLOP/byte/memory formulas with the symbols explained and their values for this workload, where the formulas come
from and what they assume, and this workload's numbers: totals over the class's *outermost* nodes (a node of the
class nested in another of the same class is not counted twice) and a row per node.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from math import ceil

from attrs import frozen

from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.core import Cost
from llm_perf_opt.hardware import BYTES_PER_ELEMENT
from llm_perf_opt.report.humanize import (
    fmt_bytes,
    fmt_flops,
    fmt_int,
    fmt_ms,
    fmt_ms_column,
    fmt_share,
    fmt_signed_pct,
    md_table,
)
from llm_perf_opt.report.layer_docs import CONTAINERS, SYMBOLS, LayerDoc, doc_for, formula_symbols
from llm_perf_opt.report.stage_view import eager_note
from llm_perf_opt.tracer.result import TracedNode

__all__ = [
    "LayerSummary",
    "cite_docs",
    "layer_classes",
    "layer_summary",
    "render_layer_pages",
    "repetition_text",
    "symbol_values",
]

_ROW_LIMIT = 25


def _short(node: TracedNode) -> str:
    return node.qualified_class_name.rsplit(".", 1)[-1]


def _module_nodes(r: AnalysisResult) -> Iterator[TracedNode]:
    """Module nodes (not the root or a stage node) in tree order."""
    return (n for n in r.trace.walk() if "/" in n.module_id)


def layer_classes(r: AnalysisResult) -> list[str]:
    """Short class names of the analysed module nodes, in order of first appearance in the tree; containers
    (``ModuleList``, ``Sequential``) only when one of them runs ops of its own (else it has nothing to say)."""
    seen: dict[str, None] = {}
    for node in _module_nodes(r):
        if _short(node) in CONTAINERS and not _has_own_ops(r, node):
            continue
        seen.setdefault(_short(node), None)
    return list(seen)


def _has_own_ops(r: AnalysisResult, node: TracedNode) -> bool:
    children = Cost.total(r.trace.nodes[c].cost for c in node.children)
    return node.cost.kernels > children.kernels


def repetition_text(r: AnalysisResult, node: TracedNode) -> str:
    """How often the node's work repeats, outermost first, as the tree prints it: ``for x11``, ``for x11 · parfor
    x64`` (a node inside a group repeats with it), ``for x511 steps`` for decode; ``-`` when it runs once."""
    chain: list[TracedNode] = []
    current: TracedNode | None = node
    while current is not None and current.module_id != "root":
        chain.append(current)
        current = r.trace.nodes.get(current.parent_id) if current.parent_id else None
    parts = []
    for item in reversed(chain):
        if item.repetition == "none" or not item.repetition_count:
            continue
        steps = " steps" if "/" not in item.module_id else ""
        parts.append(f"{item.repetition} x{fmt_int(item.repetition_count)}{steps}")
    return " · ".join(parts) or "-"


def cite_docs(text: str) -> str:
    """``model-facts §2.1`` -> ```docs/model-facts.md` §2.1``; the same for ``conventions §N``: sources name the
    documents that ship in the llm-perf-opt repository."""
    text = re.sub(r"\bmodel-facts §", "`docs/model-facts.md` §", text)
    return re.sub(r"(?<![\w/.-])conventions §", "`docs/conventions.md` §", text)


@frozen(kw_only=True)
class LayerSummary:
    """A class's totals over its outermost nodes."""

    role: str
    nodes: int
    calls: int
    cost: Cost
    seconds: float
    weight_bytes: int  # per stage (the same parameters serve prefill and decode): the largest stage's sum


def _outermost(r: AnalysisResult, cls: str) -> list[TracedNode]:
    out = []
    for node in _module_nodes(r):
        if _short(node) != cls:
            continue
        parent = node.parent_id
        nested = False
        while parent is not None:
            if "/" in parent and _short(r.trace.nodes[parent]) == cls:
                nested = True
                break
            parent = r.trace.nodes[parent].parent_id
        if not nested:
            out.append(node)
    return out


def layer_summary(r: AnalysisResult, cls: str) -> LayerSummary:
    """Totals of ``cls`` for the report's layer table and the page header."""
    nodes = _outermost(r, cls)
    doc = doc_for(cls)
    return LayerSummary(
        role=doc.role if doc else "not described (numbers are traced)",
        nodes=len(nodes),
        calls=sum(n.calls for n in nodes),
        cost=Cost.total(n.cost for n in nodes),
        seconds=sum(r.timed.nodes[n.module_id].total_s for n in nodes if n.module_id in r.timed.nodes),
        weight_bytes=max(
            (sum(n.weight_bytes for n in nodes if n.stage == stage) for stage in {n.stage for n in nodes}), default=0
        ),
    )


def symbol_values(r: AnalysisResult) -> dict[str, str]:
    """Values of the formula symbols for this workload and configuration (as text)."""
    c, w = r.config, r.workload
    a = BYTES_PER_ELEMENT[r.dtype]
    views = [("global view", w.global_view_size, 1)]
    if w.num_crops:
        views.append(("crops", w.crop_size, w.num_crops))

    def per_view(fn: object) -> str:
        assert callable(fn)
        return ", ".join(f"{fn(R)} ({name})" for name, R, _ in views)

    def padded(R: int) -> int:
        return 14 * ceil((R // 16) / 14)

    return {
        "T": f"{fmt_int(w.seq_len)} per sequence at prefill, 1 per decode step (vision: tokens of all views)",
        "B": str(w.batch_size),
        "a": f"{a} ({r.dtype})",
        "w": f"{a} ({r.dtype})",
        "S": fmt_int(w.seq_len),
        "N": fmt_int(w.max_new_tokens),
        "q": f"{fmt_int(w.seq_len)} (prefill), 1 (decode)",
        "k": f"{fmt_int(w.seq_len)} (prefill), {fmt_int(w.seq_len + 1)}..{fmt_int(w.final_kv_len)} (decode)",
        "d": fmt_int(c.hidden_size),
        "V": fmt_int(c.vocab_size),
        "H": str(c.num_attention_heads),
        "H_kv": str(c.num_key_value_heads),
        "D_h": str(c.head_dim),
        "I": fmt_int(c.intermediate_size),
        "I_e": fmt_int(c.moe_intermediate_size),
        "I_s": fmt_int(c.n_shared_experts * c.moe_intermediate_size),
        "E": str(c.n_routed_experts),
        "K": str(c.num_experts_per_tok),
        "L": str(c.num_hidden_layers),
        "R": per_view(lambda R: R),
        "g": per_view(lambda R: R // 16),
        "g_p": per_view(padded),
        "n_w": per_view(lambda R: (padded(R) // 14) ** 2),
        "t": "196 (windowed), " + per_view(lambda R: (R // 16) ** 2) + " (global blocks)",
        "s": "14 (windowed), " + per_view(lambda R: R // 16) + " (global blocks)",
        "C_s": str(c.sam.embed_dim),
        "h_s": str(c.sam.num_heads),
        "D_s": str(c.sam.head_dim),
        "M_s": fmt_int(c.sam.mlp_dim),
        "C_c": fmt_int(c.clip.hidden_size),
        "h_c": str(c.clip.num_attention_heads),
        "D_c": str(c.clip.head_dim),
        "F_c": fmt_int(c.clip.ffn_hidden_size),
        "L_c": str(c.clip.num_layers),
        "T_c": per_view(lambda R: 1 + (R // 64) ** 2),
        "n_v": ", ".join(f"{n} ({name})" for name, _, n in views),
        "d_p": fmt_int(c.projector.input_dim),
        "T_img": fmt_int(w.image_tokens),
        "T_p": "g_p^2 = "
        + per_view(lambda R: padded(R) ** 2)
        + " (windowed); g^2 = "
        + per_view(lambda R: (R // 16) ** 2)
        + " (global)",
        "taps": "16 (bicubic)",
        "k_h": "16 (SAM patch), 1 or 3 (neck), 3 (net_2, net_3)",
        "k_w": "as k_h",
        "H_out": "per convolution: "
        + per_view(lambda R: f"{R // 16} (patch, neck), {R // 32} (net_2), {R // 64} (net_3)"),
        "W_out": "as H_out (square views)",
    }


def render_layer_pages(result: AnalysisResult) -> dict[str, str]:
    """``{"layers/<Class>.md": text}`` for every analysed layer class."""
    values = symbol_values(result)
    return {f"layers/{cls}.md": _page(result, cls, values) for cls in layer_classes(result)}


def _page(r: AnalysisResult, cls: str, values: dict[str, str]) -> str:
    doc = doc_for(cls)
    nodes = _outermost(r, cls)
    qualified = sorted({n.qualified_class_name for n in _module_nodes(r) if _short(n) == cls})
    intro = (
        doc.what if doc else "No description is written for this class; the numbers below are what the trace counted."
    )
    parts = [
        f"# {cls}",
        f"{doc.role if doc else 'Layer class'} · report `{r.report_id}` · [back to the report](../report.md)",
        "## What it is in DeepSeek-OCR",
        intro + "\n\nClass: " + ", ".join(f"`{q}`" for q in qualified),
        _config(r, cls),
        _formulas(doc, values) if doc else "## Formulas\n\nNone written for this class: see the traced numbers.",
        _numbers(r, cls, nodes),
    ]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def _config(r: AnalysisResult, cls: str) -> str:
    sets: dict[str, list[str]] = {}
    for node in _module_nodes(r):
        if _short(node) != cls:
            continue
        key = ", ".join(f"{k}={_param(v)}" for k, v in sorted(node.constructor_params.items()))
        sets.setdefault(key, []).append(node.module_id)
    rows = [(f"`{key}`" if key else "(none recorded)", str(len(ids)), f"`{ids[0]}`") for key, ids in sets.items()]
    return "## Configuration here\n\n" + md_table(("constructor parameters", "nodes", "e.g."), rows, align="lrl")


def _param(value: object) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _formulas(doc: LayerDoc, values: dict[str, str]) -> str:
    parts = ["## Formulas\n", md_table(("quantity", "formula"), doc.formulas, align="ll")]
    symbols = formula_symbols(doc)
    if symbols:
        rows = [(f"`{s}`", SYMBOLS.get(s, ""), values.get(s, "-")) for s in symbols]
        parts += ["Symbols:\n", md_table(("symbol", "meaning", "value here"), rows, align="lll")]
    if doc.source:
        parts.append(f"Source: {cite_docs(doc.source)} (documents in the llm-perf-opt repository).\n")
    assumptions = [
        "FLOPs are 2 per multiply-accumulate; vector FLOPs are counted apart from matmul FLOPs.",
        *doc.assumptions,
    ]
    parts.append("Assumptions:\n\n" + "\n".join(f"- {a}" for a in assumptions) + "\n")
    return "\n".join(parts)


def _numbers(r: AnalysisResult, cls: str, nodes: list[TracedNode]) -> str:
    s = layer_summary(r, cls)
    total_s = r.timed.total_s
    note = eager_note(r)
    lines = [
        "## This workload\n",
        *([note, ""] if note else []),
        f"Totals over {s.nodes} outermost node(s), {fmt_int(s.calls)} call(s): matmul FLOPs "
        f"{fmt_int(s.cost.matmul_flops)} ({fmt_flops(s.cost.matmul_flops)}; "
        f"executed {fmt_flops(s.cost.matmul_flops_executed)}), "
        f"vector FLOPs {fmt_flops(s.cost.vector_flops)}, bytes read {fmt_bytes(s.cost.bytes_read)} "
        f"(weights {fmt_bytes(s.cost.weight_bytes_read)}), written {fmt_bytes(s.cost.bytes_written)}, "
        f"parameters held (per stage) {fmt_bytes(s.weight_bytes)}, predicted time {fmt_ms(s.seconds)}"
        + (f" ({fmt_share(s.seconds / total_s)} of the total)." if total_s else "."),
        "",
    ]
    ranked = sorted(nodes, key=lambda n: (-_seconds(r, n), n.module_id))
    rows = []
    shown = ranked[:_ROW_LIMIT]
    for n, time_text in zip(shown, fmt_ms_column([_seconds(r, n) for n in shown]), strict=True):
        rep = repetition_text(r, n)
        rows.append(
            (
                f"`{n.module_id}`",
                rep,
                fmt_int(n.calls),
                fmt_flops(n.cost.total_flops),
                fmt_bytes(n.cost.total_bytes),
                fmt_bytes(n.peak_activation_bytes),
                time_text,
                _closed_form(r, n),
            )
        )
    header = ("node", "repetition", "calls", "FLOPs", "bytes", "peak act.", "time", "closed form vs trace")
    lines.append(md_table(header, rows, align="llrrrrrl"))
    if len(ranked) > _ROW_LIMIT:
        lines.append(f"({len(ranked) - _ROW_LIMIT} more nodes not shown; model.json has every node.)")
    return "\n".join(lines)


def _seconds(r: AnalysisResult, node: TracedNode) -> float:
    timed = r.timed.nodes.get(node.module_id)
    return timed.total_s if timed else 0.0


def _closed_form(r: AnalysisResult, node: TracedNode) -> str:
    closed = r.analytic.get(node.module_id)
    if closed is None:
        return "no closed form"
    analytic = closed.cost
    traced = node.cost.matmul_flops
    if analytic.matmul_flops == traced:
        return "matmul equal"
    if traced == 0:
        return f"analytic {fmt_flops(analytic.matmul_flops)}, traced 0"
    return f"matmul {fmt_signed_pct((analytic.matmul_flops - traced) / traced)}"
