"""A small, hand-built :class:`AnalysisResult` for renderer tests (no torch, no tracer run).

The tree is a trimmed DeepSeek-OCR v1 on the Base workload (1024x1024 page, no crops, S = 283, N = 8): a few
representative nodes per stage whose costs come from docs/model-facts.md's closed forms (§3.7) - not from the tracer -
so the renderers can be tested before and independently of it.  Time, memory, throughput and the contracts are the
real ``perf`` and ``analysis.assemble`` functions applied to that tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_perf_opt.analysis.assemble import build_model_contract, build_summary
from llm_perf_opt.analysis.options import AnalysisOptions, report_id_for
from llm_perf_opt.analysis.result import AnalysisResult
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.contracts import DeepSeekOCRModelSpec, OperatorCategory
from llm_perf_opt.core import Cost
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf import (
    MemoryFootprint,
    Rates,
    StageTimes,
    capacity_check,
    default_profile,
    throughput,
    time_tree,
)
from llm_perf_opt.perf.tree import id_components
from llm_perf_opt.tracer.categories import CATEGORIES
from llm_perf_opt.tracer.result import OpLedgerEntry, TracedNode, TraceResult, UnsupportedOp
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.presets import profile_from_workload

A = 2  # bf16 bytes per element
D, V, H, HD = 1280, 129280, 10, 128  # decoder width, vocab, heads, head dim


def _mm(flops: int, *, read: int, written: int, weight: int = 0, kernels: int = 1, executed: int | None = None) -> Cost:
    return Cost(
        matmul_flops=flops,
        matmul_flops_executed=flops if executed is None else executed,
        bytes_read=read,
        bytes_written=written,
        weight_bytes_read=weight,
        kernels=kernels,
    )


def _vec(flops: int, *, read: int, written: int, kernels: int = 1) -> Cost:
    return Cost(vector_flops=flops, bytes_read=read, bytes_written=written, kernels=kernels)


def _linear(n: int, d_in: int, d_out: int, *, times: int = 1) -> Cost:
    """``nn.Linear`` without bias on ``n`` rows, ``times`` calls."""
    w = d_in * d_out * A
    return _mm(2 * n * d_in * d_out, read=n * d_in * A + w, written=n * d_out * A, weight=w).scaled(times)


def _sam_block(*, windowed: bool, g: int = 64) -> dict[str, Cost]:
    """One SAM block on one 1024 view: model-facts §3.7 closed forms (windowed on the 70x70 padded grid)."""
    tokens = g * g
    gp, nw, t = 70, 25, 196
    proj_tokens = gp * gp if windowed else tokens
    linear = _linear(proj_tokens, 768, 2304) + _linear(proj_tokens, 768, 768) + _linear(tokens, 768, 3072)
    linear = linear + _linear(tokens, 3072, 768)
    if windowed:
        attn_mm = 4 * nw * 12 * t * 14 * 64 + 4 * nw * 12 * t * t * 64
        entries = nw * 12 * t * t
    else:
        attn_mm = 4 * 12 * tokens * g * 64 + 4 * 12 * tokens * tokens * 64
        entries = 12 * tokens * tokens
    return {
        "linear": linear,
        "attention": _mm(
            attn_mm, read=3 * proj_tokens * 768 * A + entries * A, written=proj_tokens * 768 * A, kernels=6
        )
        + _vec(6 * entries, read=entries * A, written=0),
        "norm": _vec(2 * 7 * tokens * 768, read=2 * tokens * 768 * A, written=2 * tokens * 768 * A, kernels=2),
        "activation": _vec(5 * tokens * 3072, read=tokens * 3072 * A, written=tokens * 3072 * A),
    }


def _decoder_layer(*, q: int, k: int, moe: bool, steps: int = 1) -> dict[str, Cost]:
    """One decoder layer over ``q`` queries and ``k`` keys (MHA + dense SwiGLU or MoE), ``steps`` times."""
    causal = q * k - q * (q - 1) // 2
    attn = _mm(
        4 * H * q * k * HD,
        executed=4 * H * causal * HD,
        read=(q + 2 * k) * D * A,
        written=q * D * A,
    ) + _vec(5 * H * causal, read=0, written=2 * q * D * A)
    linear = _linear(q, D, D, times=4)
    cats: dict[str, Cost] = {"attention": attn, "norm": _vec(2 * 7 * q * D, read=2 * q * D * A, written=2 * q * D * A)}
    if moe:
        cats["linear"] = linear + _linear(q, D, 1792, times=2) + _linear(q, 1792, D) + _linear(q, D, 896, times=12)
        cats["linear"] = cats["linear"] + _linear(q, 896, D, times=6)
        cats["moe_routing"] = _linear(q, D, 64) + _vec(5 * q * 64 + q * 64, read=q * 64 * 4, written=q * 6 * 12)
        cats["activation"] = _vec(6 * q * (1792 + 6 * 896), read=q * (1792 + 6 * 896) * A, written=0)
    else:
        cats["linear"] = linear + _linear(q, D, 6848, times=2) + _linear(q, 6848, D)
        cats["activation"] = _vec(6 * q * 6848, read=2 * q * 6848 * A, written=q * 6848 * A)
    return {c: cost.scaled(steps) for c, cost in cats.items()}


def _decode_layer(*, S: int, steps: int, moe: bool) -> dict[str, Cost]:
    """All decode steps of one layer: step i attends over S+i keys (summed exactly)."""
    total: dict[str, Cost] = {}
    for i in range(1, steps + 1):
        for cat, cost in _decoder_layer(q=1, k=S + i, moe=moe).items():
            total[cat] = total.get(cat, Cost()) + cost
    return total


def _display_name(path: str) -> str:
    """Last path component; a group keeps its container name (``blocks.{2,5,8,11}``), as the tracer names them."""
    parts = id_components(path)
    return ".".join(parts[-2:]) if parts[-1].startswith("{") else parts[-1]


class _Builder:
    """Collects nodes; parents' inclusive costs are their own plus their children's."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}

    def add(self, nid: str, cls: str, parent: str | None, own: Mapping[str, Cost] | None = None, **kw: Any) -> None:
        self.specs[nid] = {"cls": cls, "parent": parent, "own": dict(own or {}), **kw}
        if parent is not None:
            self.specs[parent].setdefault("children", []).append(nid)

    def inclusive(self, nid: str) -> dict[str, Cost]:
        total = dict(self.specs[nid]["own"])
        for child in self.specs[nid].get("children", []):
            for cat, cost in self.inclusive(child).items():
                total[cat] = total.get(cat, Cost()) + cost
        return total

    def build(self) -> dict[str, TracedNode]:
        nodes: dict[str, TracedNode] = {}
        for nid, spec in self.specs.items():
            cats = self.inclusive(nid)
            stage = "other" if nid == "root" else nid.split("/")[0]
            path = nid.split("/", 1)[1] if "/" in nid else ""
            nodes[nid] = TracedNode(
                module_id=nid,
                name=_display_name(path) if path else nid,
                path=path,
                qualified_class_name=spec["cls"],
                stage=stage,  # type: ignore[arg-type]
                parent_id=spec["parent"],
                children=tuple(spec.get("children", [])),
                repetition=spec.get("rep", "none"),
                repetition_count=spec.get("count"),
                constructor_params=spec.get("params", {}),
                calls=spec.get("calls", 1),
                cost=Cost.total(cats.values()),
                by_category=cats,
                weight_bytes=spec.get("weights", 0),
                peak_activation_bytes=spec.get("peak", 0),
                kv_cache_bytes=spec.get("kv", 0),
            )
        return nodes


def _tree(workload: Workload) -> dict[str, TracedNode]:
    S, steps = workload.seq_len, workload.decode_steps
    kv_layer = 2 * H * HD * A * workload.final_kv_len
    b = _Builder()
    model = "llm_perf_opt.sources.deepseek_ocr_v1.model.DeepseekOCRForCausalLM"
    b.add("root", model, None, weights=6_672_212_480, peak=180_000_000, kv=12 * kv_layer)
    b.add("vision", model, "root", weights=797_493_760, peak=180_000_000)
    b.add(
        "vision/model.sam_model",
        "llm_perf_opt.sources.deepseek_ocr_v1.sam.ImageEncoderViT",
        "vision",
        own={
            "conv2d": _mm(
                2 * 4096 * 768 * 768 + 2 * 4096 * (768 * 256 + 9 * 256 * 256),
                read=9_000_000,
                written=8_000_000,
                kernels=4,
            )
        },
        params={"img_size": 1024, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "window_size": 14},
        weights=191_138_304,
        peak=180_000_000,
    )
    for ids, windowed, n in (("{0,1,3,4,6,7,9,10}", True, 8), ("{2,5,8,11}", False, 4)):
        b.add(
            f"vision/model.sam_model.blocks.{ids}",
            "llm_perf_opt.sources.deepseek_ocr_v1.sam.Block",
            "vision/model.sam_model",
            own={c: cost.scaled(n) for c, cost in _sam_block(windowed=windowed).items()},
            rep="for",
            count=n,
            calls=n,
            params={"dim": 768, "num_heads": 12, "window_size": 14 if windowed else 0},
            weights=n * (7_091_328 if windowed else 7_104_128) * A,
            peak=120_000_000 if windowed else 180_000_000,
        )
    clip_mm = 24 * (2 * 257 * (1024 * 3072 + 1024 * 1024 + 2 * 1024 * 4096) + 4 * 16 * 257 * 257 * 64)
    b.add(
        "vision/model.vision_model",
        "llm_perf_opt.sources.deepseek_ocr_v1.clip.VitModel",
        "vision",
        own={
            "linear": _mm(
                clip_mm, read=606_355_456 + 24 * 257 * 1024 * A * 8, written=24 * 257 * 1024 * A * 6, kernels=24 * 12
            )
        },
        params={"num_layers": 24, "hidden_size": 1024, "num_attention_heads": 16},
        weights=606_355_456,
        peak=40_000_000,
    )
    b.add(
        "projector",
        model,
        "root",
        own={"data_movement": _vec(0, read=273 * D * A, written=273 * D * A)},
        weights=2_622_720 * A,
    )
    b.add(
        "projector/model.projector",
        "llm_perf_opt.sources.deepseek_ocr_v1.clip.MlpProjector",
        "projector",
        params={"projector_type": "linear", "input_dim": 2048, "n_embed": D},
        weights=2_622_720 * A,
        peak=2_000_000,
    )
    b.add(
        "projector/model.projector.layers",
        "torch.nn.modules.linear.Linear",
        "projector/model.projector",
        own={"linear": _linear(256, 2048, D) + _vec(256 * D, read=D * A, written=0)},
        params={"in_features": 2048, "out_features": D, "bias": True},
        weights=2_622_720 * A,
        peak=2_000_000,
    )
    b.add("prefill", model, "root", weights=5_869_211_520, peak=363_000_000, kv=12 * 2 * H * HD * A * S)
    b.add(
        "prefill/model.layers.0",
        "llm_perf_opt.sources.deepseek_ocr_v1.decoder.DeepseekV2DecoderLayer",
        "prefill",
        own=_decoder_layer(q=S, k=S, moe=False),
        params={"hidden_size": D, "layer_idx": 0},
        weights=32_852_480 * A,
        peak=20_000_000,
        kv=2 * H * HD * A * S,
    )
    b.add(
        "prefill/model.layers.{1..11}",
        "llm_perf_opt.sources.deepseek_ocr_v1.decoder.DeepseekV2DecoderLayer",
        "prefill",
        own={c: x.scaled(11) for c, x in _decoder_layer(q=S, k=S, moe=True).items() if c != "linear"},
        rep="for",
        count=11,
        calls=11,
        params={"hidden_size": D},
        weights=11 * 233_720_320 * A,
        peak=30_000_000,
        kv=11 * 2 * H * HD * A * S,
    )
    b.add(
        "prefill/model.layers.{1..11}.mlp.experts.{0..63}",
        "llm_perf_opt.sources.deepseek_ocr_v1.moe.DeepseekV2MLP",
        "prefill/model.layers.{1..11}",
        own={"linear": _decoder_layer(q=S, k=S, moe=True)["linear"].scaled(11)},
        rep="parfor",
        count=64,
        calls=11 * 64,
        params={"hidden_size": D, "intermediate_size": 896},
        weights=11 * 64 * 3_440_640 * A,
        peak=3_000_000,
    )
    b.add(
        "prefill/lm_head",
        "torch.nn.modules.linear.Linear",
        "prefill",
        own={"linear": _linear(S, D, V)},
        params={"in_features": D, "out_features": V, "bias": False},
        weights=D * V * A,
        peak=363_000_000,
    )
    b.add("decode", model, "root", weights=5_869_211_520, peak=2_000_000, kv=12 * kv_layer)
    b.add(
        "decode/model.layers.0",
        "llm_perf_opt.sources.deepseek_ocr_v1.decoder.DeepseekV2DecoderLayer",
        "decode",
        own=_decode_layer(S=S, steps=steps, moe=False),
        params={"hidden_size": D, "layer_idx": 0},
        calls=steps,
        weights=32_852_480 * A,
        peak=100_000,
        kv=kv_layer,
    )
    b.add(
        "decode/model.layers.{1..11}",
        "llm_perf_opt.sources.deepseek_ocr_v1.decoder.DeepseekV2DecoderLayer",
        "decode",
        own={c: x.scaled(11) for c, x in _decode_layer(S=S, steps=steps, moe=True).items()},
        rep="for",
        count=11,
        calls=11 * steps,
        params={"hidden_size": D},
        weights=11 * 233_720_320 * A,
        peak=100_000,
        kv=11 * kv_layer,
    )
    b.add(
        "decode/lm_head",
        "torch.nn.modules.linear.Linear",
        "decode",
        own={"linear": _linear(1, D, V, times=steps)},
        params={"in_features": D, "out_features": V, "bias": False},
        calls=steps,
        weights=D * V * A,
        peak=517_120,
    )
    return b.build()


def _ledger() -> dict[str, OpLedgerEntry]:
    return {
        "aten.mm.default": OpLedgerEntry(
            op="aten.mm.default", bucket="counted", rule="mm", reason="2*m*k*n", count=900
        ),
        "aten.view.default": OpLedgerEntry(
            op="aten.view.default", bucket="zero-cost", rule="view", reason="metadata only", count=2000
        ),
        "aten.nonzero.default": OpLedgerEntry(
            op="aten.nonzero.default", bucket="unsupported", rule="", reason="", count=3
        ),
    }


def _validation(trace: TraceResult) -> tuple[dict[str, Any], dict[str, Any]]:
    nodes = []
    for nid, node in trace.nodes.items():
        traced = {k: getattr(node.cost, k) for k in ("matmul_flops", "vector_flops", "bytes_read", "bytes_written")}
        analytic = dict(traced)
        if nid == "vision/model.vision_model":
            analytic["bytes_read"] = round(traced["bytes_read"] * 1.05)
        rel = {k: (analytic[k] - v) / v if v else 0.0 for k, v in traced.items()}
        nodes.append({"module_id": nid, "stage": node.stage, "traced": traced, "analytic": analytic, "rel_error": rel})
    divergences = [
        {
            "id": "clip-position-interpolation",
            "pattern": "vision/model.vision_model",
            "metric": "bytes_read",
            "reason": "bicubic position interpolation reads the table once per tap in eager",
            "expected_ratio": 1.05,
            "ratio_range": [1.0, 1.1],
            "measured_on": "base 1024x1024",
            "module_id": "vision/model.vision_model",
            "ratio": 1.05,
            "nodes_covered": 1,
            "nodes_outside_range": [],
        }
    ]
    summary = {
        "status": "pass",
        "nodes_compared": len(nodes),
        "nodes_passed": len(nodes),
        "nodes_failed": 0,
        "matmul_flops_exact_nodes": len(nodes),
        "tolerance": 0.02,
        "worst_node": "vision/model.vision_model",
        "worst_metric": "bytes_read",
        "worst_rel_error": 0.05,
        "divergence_rows": 1,
        "divergence_nodes_outside_range": 0,
        "failures": {},
    }
    return {"stages": {}, "nodes": nodes, "divergences": divergences}, summary


def small_result(*, max_new_tokens: int = 8, device: str = "h100-sxm") -> AnalysisResult:
    """The fixture: Base 1024x1024, S = 283, ``max_new_tokens`` (default 8), bf16, flash, balanced routing."""
    config = DeepseekOCRConfig.base()
    options = AnalysisOptions(mode="base", page=(1024, 1024), max_new_tokens=max_new_tokens, device=device)
    workload = Workload.create(mode="base", page=(1024, 1024), max_new_tokens=max_new_tokens, config=config)
    spec = get_device(device)
    profile = default_profile("eager")
    nodes = _tree(workload)
    unsupported = (UnsupportedOp(op="aten.nonzero.default", count=3, module_paths=("prefill/model.layers.{1..11}",)),)
    trace = TraceResult(
        model="DeepseekOCRForCausalLM (deepseek-ocr-v1-base, built-in)",
        workload=workload.describe(),
        seq_len=workload.seq_len,
        max_new_tokens=max_new_tokens,
        attention="flash",
        routing="balanced",
        decode_method="affine-fit",
        decode_note="steps 1, 4 and 7 traced; every counter affine in the cache length",
        nodes=nodes,
        op_ledger=_ledger(),
        unsupported=unsupported,
        uncalled_modules=("model.vision_model.embeddings.patch_embedding",),
        categories={c.category_id: c.match_classes for c in CATEGORIES},
    )
    rates = Rates.for_device(spec, dtype="bf16", profile=profile)
    timed = time_tree(trace.tree, rates)
    stages = StageTimes.from_stage_seconds(timed.stage_s, decode_steps=workload.decode_steps)
    root = trace.root
    memory = MemoryFootprint(
        weights_bytes=root.weight_bytes,
        kv_cache_bytes=root.kv_cache_bytes,
        peak_activation_bytes=root.peak_activation_bytes,
    )
    report_id = report_id_for(options)
    notes = "FLOPs 2 per MAC; flash attention; balanced routing; h100-sxm dense peaks; default efficiencies"
    profile_contract = profile_from_workload(
        workload, profile_id="custom", description="Base 1024x1024 page", doc_kind="synthetic"
    )
    model_spec = DeepSeekOCRModelSpec(
        model_id="deepseek-ai/DeepSeek-OCR",
        model_variant="deepseek-ocr-v1-base",
        hidden_size=D,
        intermediate_size=6848,
        num_layers=12,
        num_attention_heads=H,
        vision_backbone="sam_vit_b",
        uses_moe=True,
    )
    categories = [
        OperatorCategory(
            category_id=c.category_id,
            display_name=c.display_name,
            description=c.description,
            match_classes=list(c.match_classes),
        )
        for c in CATEGORIES
    ]
    model = build_model_contract(
        report_id=report_id,
        trace=trace,
        timed=timed,
        model_spec=model_spec,
        workload=profile_contract,
        categories=categories,
        profile_run_id=None,
        measured_total_ms=None,
        notes=notes,
    )
    summary = build_summary(model=model, trace=trace, timed=timed, notes=notes)
    validation, validation_summary = _validation(trace)
    return AnalysisResult(
        options=options,
        report_id=report_id,
        model_source="deepseek-ocr-v1-base (built-in)",
        config=config,
        workload=workload,
        device=spec,
        dtype="bf16",
        routing=RoutingModel.balanced(),
        profile=profile,
        trace=trace,
        analytic=trace.tree,
        validation=validation,
        validation_summary=validation_summary,
        timed=timed,
        stages=stages,
        memory=memory,
        capacity=capacity_check(memory, spec),
        throughput=throughput(stages, B=1, N=max_new_tokens),
        model=model,
        summary=summary,
        assumptions=(
            "FLOPs count 2 per multiply-accumulate (torch FlopCounterMode convention).",
            "Attention: flash (fused, causal-effective products feed time).",
        ),
    )


def sweep_costs(config: DeepseekOCRConfig, workload: Workload, *, attention: str, routing: RoutingModel) -> Any:
    """A small cost function for sweep tests: the model-facts lm_head and decoder-weight counts per stage.

    Prefill: lm_head ``2*S*d*V`` per sequence; decode: ``N-1`` steps each reading the 1.148 GB of active weights
    (model-facts §2.6) and running the lm_head on one token.  Enough to make time scale with S, N and B.
    """
    from llm_perf_opt.core.tree import CostTree
    from llm_perf_opt.perf.compiled import WorkloadCosts

    B, S, steps = workload.batch_size, workload.seq_len, workload.decode_steps
    prefill = _linear(S * B, D, V)
    decode = Cost(
        matmul_flops=2 * B * D * V * steps,
        matmul_flops_executed=2 * B * D * V * steps,
        bytes_read=1_148_254_720 * steps,
        weight_bytes_read=1_148_254_720 * steps,
        kernels=1200 * steps,
    )
    tree = CostTree.from_categories(
        {
            "root": {"linear": prefill + decode},
            "prefill": {"linear": prefill},
            "prefill/lm_head": {"linear": prefill},
            "decode": {"linear": decode},
            "decode/model": {"linear": decode},
        }
    )
    return WorkloadCosts.from_tree(
        tree,
        weight_bytes=6_672_212_480,
        kv_cache_bytes=61_440 * workload.final_kv_len * B,
        peak_activation_bytes=S * V * 4 * B,
    )
