"""Composition of the ``prefill`` and ``decode`` stages: embedding, decoder layers, final norm, lm_head.

A stage is ``times`` forward passes of ``B`` rows with ``q`` new tokens each (prefill: one pass, ``q = S``;
decode: ``n = N - 1`` passes, ``q = 1``).  Everything but the attention core is the same in every pass; the core
depends on the key count ``k`` affinely, so its decode total is ``n*f(0) + (f(1) - f(0))*sum_k`` with
``sum_k = n*S + n(n+1)/2`` (closed form, no loop over steps).  Routed experts: expert ``e`` of MoE layer ``l``
runs on the ``c[l][e]`` tokens the routing model gives it (skipped when 0), so a group's cost is
``called*f(0) + T*k_top*(f(1) - f(0))`` per layer and pass.
"""

from __future__ import annotations

from attrs import frozen

from llm_perf_opt.analytic._vision import index_label, put_fused
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas.common import F32, I64
from llm_perf_opt.analytic.tree import Sink, TreeBuilder, vec
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = ["LanguagePass", "add_attention_cores", "add_language_pass", "decoder_weight_bytes", "layer_groups"]

_SWIGLU = ("gate_proj", "up_proj", "down_proj")


@frozen(kw_only=True)
class LanguagePass:
    """``times`` passes of ``B`` rows x ``q`` tokens, ``sum_k`` keys over all passes, ``kv_end`` cached at the end."""

    stage: str
    B: int
    q: int
    times: int
    sum_k: int
    kv_end: int


def _affine(f0: Cost, f1: Cost, *, times: int, sum_k: int) -> tuple[int, ...]:
    """``times*f0 + sum_k*(f1 - f0)`` field by field (``f`` affine in ``k``; ``sum_k`` the sum of ``k``)."""
    return tuple(times * a + sum_k * (b - a) for a, b in zip(vec(f0), vec(f1), strict=True))


def layer_groups(cfg: DeepseekOCRConfig) -> list[tuple[list[int], bool]]:
    """``(members, is_moe)`` for the dense and the MoE layer groups that exist."""
    dense = [i for i in range(cfg.num_hidden_layers) if not cfg.is_moe_layer(i)]
    moe = [i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i)]
    return [(members, is_moe) for members, is_moe in ((dense, False), (moe, True)) if members]


def add_language_pass(
    tb: Sink, cfg: DeepseekOCRConfig, *, stage: str, B: int, q: int, routing: RoutingModel, a: int
) -> None:
    """One forward pass of ``B`` rows x ``q`` tokens, everything but the attention core (see module docstring)."""
    N, d, V = B * q, cfg.hidden_size, cfg.vocab_size
    for nid in (stage, f"{stage}/model", f"{stage}/model.embed_tokens", f"{stage}/model.norm", f"{stage}/lm_head"):
        tb.node(nid, calls=1)
    tb.add(f"{stage}/model.embed_tokens", "embedding", dec.embedding(N=N, d=d, a=a))
    for members, moe in layer_groups(cfg):
        _layers(tb, cfg, stage, members, B=B, q=q, moe=moe, routing=routing, a=a)
    tb.add(f"{stage}/model.norm", "norm", dec.rms_norm(N=N, d=d, a=a))
    tb.add(f"{stage}/lm_head", "linear", dec.lm_head(N=N, d=d, V=V, a=a))
    tb.add(stage, "data_movement", dec.logits_upcast(N=N, V=V, a=a))
    put_fused(tb, f"{stage}/model.embed_tokens", fz.layer(weights=N * d * a, inputs=N * I64, outputs=N * d * a), 1)
    put_fused(tb, f"{stage}/model.norm", fz.norm_layer(N=N, d=d, affine=1, a=a), 1)
    head = fz.linear_layer(N=N, d_in=d, d_out=V, bias=False, a=a, out_bytes=F32)
    tb.add_fused(f"{stage}/lm_head", head.nbytes)
    tb.set_peak(f"{stage}/lm_head", N * d * a + N * V * a)  # eager: bf16 logits
    tb.set_peak(stage, N * V * (a + F32))  # the upcast holds the bf16 and the fp32 logits


def add_attention_cores(tb: TreeBuilder, cfg: DeepseekOCRConfig, lp: LanguagePass, *, eager: bool, a: int) -> None:
    """The key-dependent attention core of every layer, summed over the stage's passes, and the KV held."""
    Hkv, c = cfg.num_key_value_heads, cfg.head_dim
    core = _core_total(cfg, lp, eager=eager, a=a)
    B, q, H = lp.B, lp.q, cfg.num_attention_heads

    def layer(keys: int) -> fz.FusedLayer:
        return fz.decoder_attention_layer(B=B, q=q, k=keys, H=H, Hkv=Hkv, c=c, a=a, eager=eager)

    f0, f1 = layer(0).nbytes, layer(1).nbytes
    fused = lp.times * f0 + lp.sum_k * (f1 - f0)
    for members, _ in layer_groups(cfg):
        nid, L = f"{lp.stage}/model.layers.{index_label(members)}.self_attn", len(members)
        tb.add(nid, "attention", core, L)
        tb.set_kv(nid, L * 2 * lp.B * Hkv * lp.kv_end * c * a)
        tb.add_fused(nid, fused * L)
        tb.set_peak(nid, layer(lp.kv_end).live)


def _layers(
    tb: Sink,
    cfg: DeepseekOCRConfig,
    stage: str,
    members: list[int],
    *,
    B: int,
    q: int,
    moe: bool,
    routing: RoutingModel,
    a: int,
) -> None:
    N, d, H, Hkv, c = B * q, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    nid = f"{stage}/model.layers.{index_label(members)}"
    k = len(members)  # calls of each per-layer module in one pass
    for name in ("", ".self_attn", ".self_attn.rotary_emb", ".input_layernorm", ".post_attention_layernorm"):
        tb.node(nid + name, calls=k)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        tb.add(nid + name, "norm", dec.rms_norm(N=N, d=d, a=a), k)
    for name, cost in dec.qkvo(N=N, d=d, d_kv=Hkv * c, a=a).items():
        tb.add(f"{nid}.self_attn.{name}", "linear", cost, k)
        tb.node(f"{nid}.self_attn.{name}", calls=k)
    tb.add(f"{nid}.self_attn.rotary_emb", "attention", dec.rotary_cos_sin(B=B, q=q, c=c, a=a), k)
    own = dec.rope(N=N, H=H, c=c, a=a) + dec.rope(N=N, H=Hkv, c=c, a=a) + dec.kv_append(N=N, d_kv=Hkv * c, a=a)
    tb.add(f"{nid}.self_attn", "attention", own, k)
    tb.add(nid, "elementwise", dec.residual_add(n=N * d, a=a), 2 * k)
    put_fused(tb, nid, fz.elementwise_layer(n=N * d, operands=2, a=a), 2 * k)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        put_fused(tb, nid + name, fz.norm_layer(N=N, d=d, affine=1, a=a), k)
    for name, d_out in (("q_proj", H * c), ("k_proj", Hkv * c), ("v_proj", Hkv * c)):
        put_fused(tb, f"{nid}.self_attn.{name}", fz.linear_layer(N=N, d_in=d, d_out=d_out, bias=False, a=a), k)
    put_fused(tb, f"{nid}.self_attn.o_proj", fz.linear_layer(N=N, d_in=H * c, d_out=d, bias=False, a=a), k)
    if moe:
        _moe(tb, cfg, members, nid=f"{nid}.mlp", T=N, routing=routing, a=a)
    else:
        _swiglu(tb, f"{nid}.mlp", N=N, d=d, d_ff=cfg.intermediate_size, calls=k, a=a)


def _core_total(cfg: DeepseekOCRConfig, lp: LanguagePass, *, eager: bool, a: int) -> tuple[int, ...]:
    """The attention core of one layer summed over the stage's passes (affine in the key count)."""
    B, q, H, c = lp.B, lp.q, cfg.num_attention_heads, cfg.head_dim

    def core(keys: int) -> Cost:
        if eager:
            cost = dec.attention_eager(B=B, q=q, k=keys, H=H, c=c, a=a, masked=q > 1)
            return cost + dec.head_merge(N=B * q, d=H * c, a=a) if q > 1 else cost
        return dec.attention_flash(B=B, q=q, k=keys, H=H, c=c, a=a, causal=q > 1)

    if lp.times == 1:
        return vec(core(lp.sum_k))
    return _affine(core(0), core(1), times=lp.times, sum_k=lp.sum_k)


def _swiglu(tb: Sink, nid: str, *, N: int, d: int, d_ff: int, calls: int, a: int) -> None:
    """A SwiGLU MLP on ``N`` rows, ``calls`` times: three linears, ``act_fn``, and the gating multiply (own)."""
    for name, cost in dec.swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, calls)
        tb.node(f"{nid}.{name}", calls=calls)
    tb.add(f"{nid}.act_fn", "activation", dec.swiglu_silu(N=N, d_ff=d_ff, a=a), calls)
    for name, d_in, d_out in (("gate_proj", d, d_ff), ("up_proj", d, d_ff), ("down_proj", d_ff, d)):
        put_fused(tb, f"{nid}.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), calls)
    tb.node(f"{nid}.act_fn", calls=calls)
    tb.add(nid, "activation", dec.swiglu_mul(N=N, d_ff=d_ff, a=a), calls)
    tb.node(nid, calls=calls)


def _moe(
    tb: Sink,
    cfg: DeepseekOCRConfig,
    members: list[int],
    *,
    nid: str,
    T: int,
    routing: RoutingModel,
    a: int,
) -> None:
    d, E, k_top = cfg.hidden_size, cfg.n_routed_experts, cfg.num_experts_per_tok
    k = len(members)
    tb.node(nid, calls=k)
    tb.add(f"{nid}.gate", "moe_routing", dec.moe_gate(T=T, d=d, E=E, k_top=k_top, a=a), k)
    tb.node(f"{nid}.gate", calls=k)
    own = dec.moe_dispatch(T=T, d=d, E=E, k_top=k_top, a=a) + dec.moe_combine(T=T, d=d, k_top=k_top, a=a)
    tb.add(nid, "moe_routing", own, k)
    gate = fz.layer(weights=E * d * a, inputs=T * d * a, outputs=T * k_top * (F32 + I64))
    put_fused(tb, f"{nid}.gate", gate, k)
    put_fused(tb, nid, fz.layer(weights=0, inputs=T * k_top * d * a + T * d * a, outputs=T * d * a), k)
    shared = cfg.moe_intermediate_size * cfg.n_shared_experts
    if cfg.n_shared_experts:
        _swiglu(tb, f"{nid}.shared_experts", N=T, d=d, d_ff=shared, calls=k, a=a)
    called = sum(
        sum(1 for count in routing.expert_counts(layer_idx=i, num_tokens=T, num_experts=E, top_k=k_top) if count)
        for i in members
    )
    tb.node(f"{nid}.experts")
    xid = f"{nid}.experts.{index_label(list(range(E)))}"
    _routed(tb, xid, d=d, d_ff=cfg.moe_intermediate_size, a=a, calls=called, rows=T * k_top * len(members))


def _routed(tb: Sink, xid: str, *, d: int, d_ff: int, a: int, calls: int, rows: int) -> None:
    """Routed experts: ``calls`` expert calls over ``rows`` token rows in all (each call reads its weights)."""

    def parts(N: int) -> dict[str, tuple[str, Cost]]:
        out = {f"{xid}.{name}": ("linear", cost) for name, cost in dec.swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).items()}
        out[f"{xid}.act_fn"] = ("activation", dec.swiglu_silu(N=N, d_ff=d_ff, a=a))
        out[xid] = ("activation", dec.swiglu_mul(N=N, d_ff=d_ff, a=a))
        return out

    zero, one = parts(0), parts(1)
    for node_id, (category, f0) in zero.items():
        tb.add(node_id, category, _affine(f0, one[node_id][1], times=calls, sum_k=rows))
        tb.node(node_id, calls=calls)
    for name, d_in, d_out in (("gate_proj", d, d_ff), ("up_proj", d, d_ff), ("down_proj", d_ff, d)):
        w0 = fz.linear_layer(N=0, d_in=d_in, d_out=d_out, bias=False, a=a).nbytes
        w1 = fz.linear_layer(N=1, d_in=d_in, d_out=d_out, bias=False, a=a).nbytes
        tb.add_fused(f"{xid}.{name}", calls * w0 + rows * (w1 - w0))


def decoder_weight_bytes(tb: TreeBuilder, cfg: DeepseekOCRConfig, stage: str, *, a: int) -> None:
    """Parameter bytes of every language-model module called in ``stage`` (all experts of a called group)."""
    d, V, c = cfg.hidden_size, cfg.vocab_size, cfg.head_dim
    d_kv = cfg.num_key_value_heads * c
    tb.add_weights(f"{stage}/model", 2 * cfg.projector.n_embed * a)  # image_newline, view_seperator
    tb.add_weights(f"{stage}/model.embed_tokens", V * d * a)
    tb.add_weights(f"{stage}/model.norm", d * a)
    tb.add_weights(f"{stage}/lm_head", V * d * a)
    for moe in (False, True):
        members = [i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i) == moe]
        if not members:
            continue
        nid, L = f"{stage}/model.layers.{index_label(members)}", len(members)
        for name in ("input_layernorm", "post_attention_layernorm"):
            tb.add_weights(f"{nid}.{name}", L * d * a)
        for name, width in (("q_proj", d), ("k_proj", d_kv), ("v_proj", d_kv), ("o_proj", d)):
            tb.add_weights(f"{nid}.self_attn.{name}", L * d * width * a)
        if not moe:
            for name in _SWIGLU:
                tb.add_weights(f"{nid}.mlp.{name}", L * d * cfg.intermediate_size * a)
            continue
        E, Ie = cfg.n_routed_experts, cfg.moe_intermediate_size
        tb.add_weights(f"{nid}.mlp.gate", L * E * d * a)
        xid = f"{nid}.mlp.experts.{index_label(list(range(E)))}"
        for name in _SWIGLU:
            tb.add_weights(f"{xid}.{name}", L * E * d * Ie * a)
            if cfg.n_shared_experts:
                tb.add_weights(f"{nid}.mlp.shared_experts.{name}", L * d * Ie * cfg.n_shared_experts * a)
