"""DeepSeek-OCR-2's ``prefill`` and ``decode`` stages, charged to the ids of its trace (``model.language_model.*``).

The decoder is v1's (same widths, MHA, 1 dense + 11 MoE layers, 64 routed experts top-6, 2 shared), run by
transformers' text model: one rotary table per forward (``model.language_model.rotary_emb``) shared by the layers,
one causal mask per forward for eager attention (also for a one-token decode step), experts fused in one module
per layer (the counting experts: sorted dispatch, one ``gate_up`` and one ``down`` product per called expert), no
logits upcast.  A stage is ``times`` passes of ``B`` rows x ``q`` tokens; key-dependent parts (attention core,
decode mask) are affine in the key count and summed in closed form (``times*f(0) + sum_k*(f(1) - f(0))``).
"""

from __future__ import annotations

from llm_perf_opt.analytic._language import LanguagePass, layer_groups
from llm_perf_opt.analytic._vision import index_label, put_fused
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import ocr2
from llm_perf_opt.analytic.formulas import qwen2_vision as qv
from llm_perf_opt.analytic.formulas.common import I64, elementwise, linear
from llm_perf_opt.analytic.tree import Sink, TreeBuilder, vec
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = ["add_ocr2_attention", "add_ocr2_pass", "ocr2_decoder_weights"]


def _lm(stage: str) -> str:
    return f"{stage}/model.language_model"


def add_ocr2_pass(
    tb: Sink,
    cfg: DeepseekOCRConfig,
    *,
    stage: str,
    B: int,
    q: int,
    positions_shared: bool,
    routing: RoutingModel,
    a: int,
) -> None:
    """One pass of ``B`` rows x ``q`` tokens without its key-dependent parts (attention cores, decode mask).

    ``positions_shared``: the ``[B, q]`` position ids are one row expanded over the batch (prefill), so the rotary
    table reads ``q`` of them; a decode step's are ``B`` distinct ids.
    """
    N, d, V, c = B * q, cfg.hidden_size, cfg.vocab_size, cfg.head_dim
    lm = _lm(stage)
    for nid in (
        stage,
        f"{stage}/model",
        lm,
        f"{lm}.embed_tokens",
        f"{lm}.rotary_emb",
        f"{lm}.norm",
        f"{stage}/lm_head",
    ):
        tb.node(nid, calls=1)
    tb.node(f"{lm}.layers")
    tb.add(f"{lm}.embed_tokens", "embedding", dec.embedding(N=N, d=d, a=a))
    table = qv.rotary_table(N=N, c=c, a=a, unique=q if positions_shared else N)
    tb.add(f"{lm}.rotary_emb", "attention", table)
    for members, moe in layer_groups(cfg):
        _layers(tb, cfg, stage, members, B=B, q=q, moe=moe, routing=routing, a=a)
    tb.add(f"{lm}.norm", "norm", dec.rms_norm(N=N, d=d, a=a))
    tb.add(f"{stage}/lm_head", "linear", dec.lm_head(N=N, d=d, V=V, a=a))
    put_fused(tb, f"{lm}.embed_tokens", fz.layer(weights=N * d * a, inputs=N * I64, outputs=N * d * a), 1)
    put_fused(tb, f"{lm}.norm", fz.norm_layer(N=N, d=d, affine=1, a=a), 1)
    put_fused(tb, f"{stage}/lm_head", fz.linear_layer(N=N, d_in=d, d_out=V, bias=False, a=a), 1)


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
    nid = f"{_lm(stage)}.layers.{index_label(members)}"
    k = len(members)
    for name in ("", ".self_attn", ".input_layernorm", ".post_attention_layernorm"):
        tb.node(nid + name, calls=k)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        tb.add(nid + name, "norm", dec.rms_norm(N=N, d=d, a=a), k)
        put_fused(tb, nid + name, fz.norm_layer(N=N, d=d, affine=1, a=a), k)
    for name, cost in dec.qkvo(N=N, d=d, d_kv=Hkv * c, a=a).items():
        tb.add(f"{nid}.self_attn.{name}", "linear", cost, k)
        tb.node(f"{nid}.self_attn.{name}", calls=k)
    for name, d_in, d_out in (
        ("q_proj", d, H * c),
        ("k_proj", d, Hkv * c),
        ("v_proj", d, Hkv * c),
        ("o_proj", H * c, d),
    ):
        put_fused(tb, f"{nid}.self_attn.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), k)
    own = dec.rope(N=N, H=H, c=c, a=a) + dec.rope(N=N, H=Hkv, c=c, a=a) + dec.kv_append(N=N, d_kv=Hkv * c, a=a)
    tb.add(f"{nid}.self_attn", "attention", own, k)
    tb.add(nid, "elementwise", dec.residual_add(n=N * d, a=a), 2 * k)
    put_fused(tb, nid, fz.elementwise_layer(n=N * d, operands=2, a=a), 2 * k)
    if moe:
        _moe(tb, cfg, members, nid=f"{nid}.mlp", T=N, routing=routing, a=a)
    else:
        _swiglu(tb, f"{nid}.mlp", N=N, d=d, d_ff=cfg.intermediate_size, calls=k, a=a)


def _swiglu(tb: Sink, nid: str, *, N: int, d: int, d_ff: int, calls: int, a: int) -> None:
    for name, cost in dec.swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, calls)
        tb.node(f"{nid}.{name}", calls=calls)
    for name, d_in, d_out in (("gate_proj", d, d_ff), ("up_proj", d, d_ff), ("down_proj", d_ff, d)):
        put_fused(tb, f"{nid}.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), calls)
    tb.add(f"{nid}.act_fn", "activation", dec.swiglu_silu(N=N, d_ff=d_ff, a=a), calls)
    tb.node(f"{nid}.act_fn", calls=calls)
    tb.add(nid, "activation", dec.swiglu_mul(N=N, d_ff=d_ff, a=a), calls)
    tb.node(nid, calls=calls)


def _moe(
    tb: Sink, cfg: DeepseekOCRConfig, members: list[int], *, nid: str, T: int, routing: RoutingModel, a: int
) -> None:
    d, E, k_top, Ie = cfg.hidden_size, cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.moe_intermediate_size
    k = len(members)
    for name in ("", ".gate", ".experts"):
        tb.node(nid + name, calls=k)
    tb.add(f"{nid}.gate", "moe_routing", dec.moe_gate(T=T, d=d, E=E, k_top=k_top, a=a), k)
    put_fused(tb, f"{nid}.gate", fz.layer(weights=E * d * a, inputs=T * d * a, outputs=T * k_top * 12), k)
    tb.add(nid, "elementwise", dec.residual_add(n=T * d, a=a), k)  # routed + shared
    if cfg.n_shared_experts:
        _swiglu(tb, f"{nid}.shared_experts", N=T, d=d, d_ff=Ie * cfg.n_shared_experts, calls=k, a=a)
    called = sum(
        sum(1 for n in routing.expert_counts(layer_idx=i, num_tokens=T, num_experts=E, top_k=k_top) if n)
        for i in members
    )
    rows = T * k_top * k
    own = ocr2.expert_dispatch(T=T, d=d, k_top=k_top, a=a) + ocr2.expert_combine(T=T, d=d, k_top=k_top, a=a)
    tb.add(f"{nid}.experts", "moe_routing", own, k)

    def expert(n: int) -> tuple[Cost, Cost]:
        linears = linear(N=n, d_in=d, d_out=2 * Ie, bias=False, a=a, w=a) + linear(
            N=n, d_in=Ie, d_out=d, bias=False, a=a, w=a
        )
        return linears + elementwise(n=n * Ie, read=2 * n * Ie * a, written=n * Ie * a), dec.swiglu_silu(
            N=n, d_ff=Ie, a=a
        )

    (x0, s0), (x1, s1) = expert(0), expert(1)
    tb.add(f"{nid}.experts", "linear", _affine(x0, x1, times=called, sum_k=rows))
    tb.add(f"{nid}.experts.act_fn", "activation", _affine(s0, s1, times=called, sum_k=rows))
    tb.node(f"{nid}.experts.act_fn", calls=called)
    w0 = fz.linear_layer(N=0, d_in=d, d_out=3 * Ie, bias=False, a=a).nbytes
    w1 = fz.linear_layer(N=1, d_in=d, d_out=3 * Ie, bias=False, a=a).nbytes
    tb.add_fused(f"{nid}.experts", called * w0 + rows * (w1 - w0))


def _affine(f0: Cost, f1: Cost, *, times: int, sum_k: int) -> tuple[int, ...]:
    return tuple(times * x + sum_k * (y - x) for x, y in zip(vec(f0), vec(f1), strict=True))


def add_ocr2_attention(tb: TreeBuilder, cfg: DeepseekOCRConfig, lp: LanguagePass, *, eager: bool, a: int) -> None:
    """The key-dependent parts of a stage: every layer's attention core (eager: always under the materialised
    ``[B, 1, q, k]`` mask; flash: causal prefill, unmasked decode), the decode steps' eager masks, the KV held."""
    B, q, H, Hkv, c = lp.B, lp.q, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim

    def core(keys: int) -> Cost:
        if eager:
            cost = dec.attention_eager(B=B, q=q, k=keys, H=H, c=c, a=a, masked=True)
            cost += Cost(bytes_read=(B - 1) * q * keys * a)  # the mask is materialised per row, not broadcast
            return cost + dec.head_merge(N=B * q, d=H * c, a=a) if q > 1 else cost
        return dec.attention_flash(B=B, q=q, k=keys, H=H, c=c, a=a, causal=q > 1)

    total = vec(core(lp.sum_k)) if lp.times == 1 else _affine(core(0), core(1), times=lp.times, sum_k=lp.sum_k)
    f0 = fz.decoder_attention_layer(B=B, q=q, k=0, H=H, Hkv=Hkv, c=c, a=a, eager=eager).nbytes
    f1 = fz.decoder_attention_layer(B=B, q=q, k=1, H=H, Hkv=Hkv, c=c, a=a, eager=eager).nbytes
    for members, _ in layer_groups(cfg):
        nid, L = f"{_lm(lp.stage)}.layers.{index_label(members)}.self_attn", len(members)
        tb.add(nid, "attention", total, L)
        tb.set_kv(nid, L * 2 * B * Hkv * lp.kv_end * c * a)
        tb.add_fused(nid, (lp.times * f0 + lp.sum_k * (f1 - f0)) * L)
        tb.set_peak(nid, fz.decoder_attention_layer(B=B, q=q, k=lp.kv_end, H=H, Hkv=Hkv, c=c, a=a, eager=eager).live)
    if eager and lp.stage == "decode":
        m0, m1 = ocr2.causal_mask_eager(B=B, q=q, k=0, a=a), ocr2.causal_mask_eager(B=B, q=q, k=1, a=a)
        tb.add(_lm("decode"), "elementwise", _affine(m0, m1, times=lp.times, sum_k=lp.sum_k))


def ocr2_decoder_weights(tb: TreeBuilder, cfg: DeepseekOCRConfig, stage: str, *, a: int) -> None:
    """Parameter bytes of every language-model module called in ``stage`` (all experts of a called layer)."""
    d, V, c, Ie, E = cfg.hidden_size, cfg.vocab_size, cfg.head_dim, cfg.moe_intermediate_size, cfg.n_routed_experts
    d_kv, lm = cfg.num_key_value_heads * c, _lm(stage)
    tb.add_weights(f"{stage}/model", d * a)  # view_separator
    tb.add_weights(f"{lm}.embed_tokens", V * d * a)
    tb.add_weights(f"{lm}.norm", d * a)
    tb.add_weights(f"{stage}/lm_head", V * d * a)
    for members, moe in layer_groups(cfg):
        nid, L = f"{lm}.layers.{index_label(members)}", len(members)
        for name in ("input_layernorm", "post_attention_layernorm"):
            tb.add_weights(f"{nid}.{name}", L * d * a)
        for name, width in (("q_proj", d), ("k_proj", d_kv), ("v_proj", d_kv), ("o_proj", d)):
            tb.add_weights(f"{nid}.self_attn.{name}", L * d * width * a)
        mlp = f"{nid}.mlp"
        if not moe:
            for name in ("gate_proj", "up_proj", "down_proj"):
                tb.add_weights(f"{mlp}.{name}", L * d * cfg.intermediate_size * a)
            continue
        tb.add_weights(f"{mlp}.gate", L * E * d * a)
        tb.add_weights(f"{mlp}.experts", L * E * 3 * d * Ie * a)
        for name in ("gate_proj", "up_proj", "down_proj"):
            tb.add_weights(f"{mlp}.shared_experts.{name}", L * d * Ie * cfg.n_shared_experts * a)
