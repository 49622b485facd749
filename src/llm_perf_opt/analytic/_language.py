"""Composition of the ``prefill`` and ``decode`` stages for both families: embedding, decoder layers, final norm,
lm_head, charged to the tracer's module ids.

Both families run the same DeepSeek-V2 decoder (same widths, MHA, dense then MoE layers, routed top-k plus shared
experts); what differs is the runner, kept as data in a :class:`DecoderRun`: v1's remote code (:data:`V1_DECODER`:
text model at ``model``, cos/sin computed per layer, fp32 logits upcast, one module per routed expert with upstream's
sorted dispatch, mask only under a multi-token query) and transformers' text model in DeepSeek-OCR-2
(:data:`OCR2_DECODER`: text model at ``model.language_model``, one rotary table per pass, no upcast, experts fused in
one module per layer with the counting dispatch, an eager mask materialised per row for every pass).

A stage is ``times`` forward passes of ``B`` rows with ``q`` new tokens each (prefill: one pass, ``q = S``;
decode: ``n = N - 1`` passes, ``q = 1``).  Everything but the key-dependent parts (attention core, OCR-2's decode
mask) is the same in every pass; those are affine in the key count ``k``, so their decode total is
``n*f(0) + (f(1) - f(0))*sum_k`` with ``sum_k = n*S + n(n+1)/2`` (closed form, no loop over steps).  Routed experts:
expert ``e`` of MoE layer ``l`` runs on the ``c[l][e]`` tokens the routing model gives it (skipped when 0), so a
group's cost is ``called*f(0) + T*k_top*(f(1) - f(0))`` per layer and pass.
"""

from __future__ import annotations

from functools import lru_cache

from attrs import field, frozen

from llm_perf_opt.analytic._parts import affine, index_label, put_fused, swiglu
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import ocr2
from llm_perf_opt.analytic.formulas import qwen2_vision as qv
from llm_perf_opt.analytic.formulas.common import F32, I64, elementwise, linear
from llm_perf_opt.analytic.tree import Recorder, Recording, Sink, TreeBuilder, vec
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core import Cost
from llm_perf_opt.workloads.routing import RoutingModel

__all__ = [
    "OCR2_DECODER",
    "V1_DECODER",
    "DecoderRun",
    "LanguagePass",
    "add_language_stages",
    "decoder_params",
    "language_passes",
    "layer_groups",
]

_SWIGLU = ("gate_proj", "up_proj", "down_proj")


@frozen(kw_only=True)
class DecoderRun:
    """How a family's runner lays out and runs the DeepSeek-V2 decoder (see the module docstring)."""

    lm: str = field(metadata={"help": "the text model's path below a stage: 'model' or 'model.language_model'"})
    rotary_per_layer: bool = field(
        metadata={"help": "each self_attn computes cos/sin for its rows (else one table per pass at lm.rotary_emb)"}
    )
    logits_upcast: bool = field(metadata={"help": "lm_head's logits are cast to fp32 after it"})
    fused_experts: bool = field(
        metadata={"help": "one experts module per MoE layer, counting dispatch (else one module per routed expert)"}
    )
    mask_per_row: bool = field(
        metadata={"help": "eager: a [B, 1, q, k] mask materialised per row for every pass, decode steps included"}
    )

    def path(self, stage: str) -> str:
        """The text model's node id in ``stage``."""
        return f"{stage}/{self.lm}"


V1_DECODER = DecoderRun(lm="model", rotary_per_layer=True, logits_upcast=True, fused_experts=False, mask_per_row=False)
OCR2_DECODER = DecoderRun(
    lm="model.language_model", rotary_per_layer=False, logits_upcast=False, fused_experts=True, mask_per_row=True
)


@frozen(kw_only=True)
class LanguagePass:
    """``times`` passes of ``B`` rows x ``q`` tokens, ``sum_k`` keys over all passes, ``kv_end`` cached at the end."""

    stage: str
    B: int
    q: int
    times: int
    sum_k: int
    kv_end: int


def language_passes(*, B: int, S: int, N: int) -> list[LanguagePass]:
    """The prefill pass over ``S`` tokens and, when ``N > 1``, the ``N - 1`` one-token decode steps."""
    passes = [LanguagePass(stage="prefill", B=B, q=S, times=1, sum_k=S, kv_end=S)]
    steps = N - 1
    if steps:
        sum_k = steps * S + steps * (steps + 1) // 2
        passes.append(LanguagePass(stage="decode", B=B, q=1, times=steps, sum_k=sum_k, kv_end=S + steps))
    return passes


def add_language_stages(
    tb: TreeBuilder,
    cfg: DeepseekOCRConfig,
    run: DecoderRun,
    *,
    B: int,
    S: int,
    N: int,
    routing: RoutingModel,
    eager: bool,
    own_weights: int,
    a: int,
) -> None:
    """``prefill`` and ``decode`` of ``B`` rows (``S`` prompt tokens, ``N`` generated): every pass, the attention
    cores summed in closed form, and the parameter bytes of what runs (``own_weights``: the model module's own,
    its view-separator vectors)."""
    for lp in language_passes(B=B, S=S, N=N):
        tb.replay(_pass_records(cfg, run, lp.stage, lp.B, lp.q, routing, a), lp.times)
        _attention_cores(tb, cfg, run, lp, eager=eager, a=a)
        tb.add_weights(f"{lp.stage}/model", own_weights)
        _decoder_weights(tb, cfg, run, lp.stage, a=a)


def layer_groups(cfg: DeepseekOCRConfig) -> list[tuple[list[int], bool]]:
    """``(members, is_moe)`` for the dense and the MoE layer groups that exist."""
    dense = [i for i in range(cfg.num_hidden_layers) if not cfg.is_moe_layer(i)]
    moe = [i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i)]
    return [(members, is_moe) for members, is_moe in ((dense, False), (moe, True)) if members]


@lru_cache(maxsize=512)
def _pass_records(
    cfg: DeepseekOCRConfig, run: DecoderRun, stage: str, B: int, q: int, routing: RoutingModel, a: int
) -> Recording:
    """One language pass without its key-dependent parts (memoised: decode passes of any length share it)."""
    rec = Recorder()
    _language_pass(rec, cfg, run, stage=stage, B=B, q=q, routing=routing, a=a)
    return rec.frozen()


def _language_pass(
    tb: Sink, cfg: DeepseekOCRConfig, run: DecoderRun, *, stage: str, B: int, q: int, routing: RoutingModel, a: int
) -> None:
    """One forward pass of ``B`` rows x ``q`` tokens without its key-dependent parts (see the module docstring).

    A shared rotary table reads ``q`` position ids in the prefill (one row expanded over the batch) and ``B``
    distinct ones in a decode step.
    """
    N, d, V, c = B * q, cfg.hidden_size, cfg.vocab_size, cfg.head_dim
    lm = run.path(stage)
    table = () if run.rotary_per_layer else (f"{lm}.rotary_emb",)
    for nid in dict.fromkeys((stage, f"{stage}/model", lm, f"{lm}.embed_tokens", *table, f"{lm}.norm")):
        tb.node(nid, calls=1)
    tb.node(f"{stage}/lm_head", calls=1)
    if table:
        tb.node(f"{lm}.layers")  # transformers' text model: the layer list before the tables it reads
    tb.add(f"{lm}.embed_tokens", "embedding", dec.embedding(N=N, d=d, a=a))
    if table:
        unique = q if stage == "prefill" else N
        tb.add(table[0], "attention", qv.rotary_table(N=N, c=c, a=a, unique=unique))
    for members, moe in layer_groups(cfg):
        _layers(tb, cfg, run, stage, members, B=B, q=q, moe=moe, routing=routing, a=a)
    tb.add(f"{lm}.norm", "norm", dec.rms_norm(N=N, d=d, a=a))
    tb.add(f"{stage}/lm_head", "linear", dec.lm_head(N=N, d=d, V=V, a=a))
    put_fused(tb, f"{lm}.embed_tokens", fz.layer(weights=N * d * a, inputs=N * I64, outputs=N * d * a), 1)
    put_fused(tb, f"{lm}.norm", fz.norm_layer(N=N, d=d, affine=1, a=a), 1)
    _lm_head_fused(tb, run, stage, N=N, d=d, V=V, a=a)


def _lm_head_fused(tb: Sink, run: DecoderRun, stage: str, *, N: int, d: int, V: int, a: int) -> None:
    """lm_head's fused bytes and working set; with the fp32 upcast, the logits are written in fp32 while the
    working set holds the bf16 ones, and the upcast holds both."""
    head = fz.linear_layer(N=N, d_in=d, d_out=V, bias=False, a=a)
    if not run.logits_upcast:
        put_fused(tb, f"{stage}/lm_head", head, 1)
        return
    tb.add(stage, "data_movement", dec.logits_upcast(N=N, V=V, a=a))
    tb.add_fused(f"{stage}/lm_head", fz.linear_layer(N=N, d_in=d, d_out=V, bias=False, a=a, out_bytes=F32).nbytes)
    tb.set_peak(f"{stage}/lm_head", head.live)
    tb.set_peak(stage, N * V * (a + F32))


def _layers(
    tb: Sink,
    cfg: DeepseekOCRConfig,
    run: DecoderRun,
    stage: str,
    members: list[int],
    *,
    B: int,
    q: int,
    moe: bool,
    routing: RoutingModel,
    a: int,
) -> None:
    """A group of identical decoder layers, one pass: norms, projections, RoPE and the KV append, residuals, MLP."""
    N, d, H, Hkv, c = B * q, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    nid = f"{run.path(stage)}.layers.{index_label(members)}"
    k = len(members)  # calls of each per-layer module in one pass
    rotary = (".self_attn.rotary_emb",) if run.rotary_per_layer else ()
    for name in ("", ".self_attn", *rotary, ".input_layernorm", ".post_attention_layernorm"):
        tb.node(nid + name, calls=k)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        tb.add(nid + name, "norm", dec.rms_norm(N=N, d=d, a=a), k)
    for name, cost in dec.qkvo(N=N, d=d, d_kv=Hkv * c, a=a).items():
        tb.add(f"{nid}.self_attn.{name}", "linear", cost, k)
        tb.node(f"{nid}.self_attn.{name}", calls=k)
    if rotary:
        tb.add(nid + rotary[0], "attention", dec.rotary_cos_sin(B=B, q=q, c=c, a=a), k)
    own = dec.rope(N=N, H=H, c=c, a=a) + dec.rope(N=N, H=Hkv, c=c, a=a) + dec.kv_append(N=N, d_kv=Hkv * c, a=a)
    tb.add(f"{nid}.self_attn", "attention", own, k)
    tb.add(nid, "elementwise", dec.residual_add(n=N * d, a=a), 2 * k)
    put_fused(tb, nid, fz.elementwise_layer(n=N * d, operands=2, a=a), 2 * k)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        put_fused(tb, nid + name, fz.norm_layer(N=N, d=d, affine=1, a=a), k)
    for name, d_in, d_out in (
        ("q_proj", d, H * c),
        ("k_proj", d, Hkv * c),
        ("v_proj", d, Hkv * c),
        ("o_proj", H * c, d),
    ):
        put_fused(tb, f"{nid}.self_attn.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), k)
    if moe:
        _moe(tb, cfg, run, members, nid=f"{nid}.mlp", T=N, routing=routing, a=a)
    else:
        swiglu(tb, f"{nid}.mlp", N=N, d=d, d_ff=cfg.intermediate_size, calls=k, a=a)


def _moe(
    tb: Sink,
    cfg: DeepseekOCRConfig,
    run: DecoderRun,
    members: list[int],
    *,
    nid: str,
    T: int,
    routing: RoutingModel,
    a: int,
) -> None:
    """A group of MoE layers on ``T`` tokens: gate, dispatch and combine, shared experts, the routed experts."""
    d, E, k_top = cfg.hidden_size, cfg.n_routed_experts, cfg.num_experts_per_tok
    k = len(members)
    for name in ("", ".gate", ".experts") if run.fused_experts else ("", ".gate"):
        tb.node(nid + name, calls=k)
    tb.add(f"{nid}.gate", "moe_routing", dec.moe_gate(T=T, d=d, E=E, k_top=k_top, a=a), k)
    put_fused(tb, f"{nid}.gate", fz.layer(weights=E * d * a, inputs=T * d * a, outputs=T * k_top * (F32 + I64)), k)
    if run.fused_experts:  # the experts module dispatches and combines; the MoE adds the routed and shared outputs
        tb.add(nid, "elementwise", dec.residual_add(n=T * d, a=a), k)
    else:
        own = dec.moe_dispatch(T=T, d=d, E=E, k_top=k_top, a=a) + dec.moe_combine(T=T, d=d, k_top=k_top, a=a)
        tb.add(nid, "moe_routing", own, k)
        put_fused(tb, nid, fz.layer(weights=0, inputs=T * k_top * d * a + T * d * a, outputs=T * d * a), k)
    if cfg.n_shared_experts:
        swiglu(
            tb, f"{nid}.shared_experts", N=T, d=d, d_ff=cfg.moe_intermediate_size * cfg.n_shared_experts, calls=k, a=a
        )
    called = sum(
        sum(1 for count in routing.expert_counts(layer_idx=i, num_tokens=T, num_experts=E, top_k=k_top) if count)
        for i in members
    )
    rows = T * k_top * k
    if run.fused_experts:
        _fused_experts(tb, cfg, f"{nid}.experts", T=T, k=k, calls=called, rows=rows, a=a)
    else:
        tb.node(f"{nid}.experts")
        _expert_modules(
            tb,
            f"{nid}.experts.{index_label(list(range(E)))}",
            d=d,
            d_ff=cfg.moe_intermediate_size,
            calls=called,
            rows=rows,
            a=a,
        )


def _expert_modules(tb: Sink, xid: str, *, d: int, d_ff: int, calls: int, rows: int, a: int) -> None:
    """Routed experts as one SwiGLU module each: ``calls`` expert calls over ``rows`` token rows in all (each call
    reads its weights)."""

    def parts(N: int) -> dict[str, tuple[str, Cost]]:
        out = {f"{xid}.{name}": ("linear", cost) for name, cost in dec.swiglu_linears(N=N, d=d, d_ff=d_ff, a=a).items()}
        out[f"{xid}.act_fn"] = ("activation", dec.swiglu_silu(N=N, d_ff=d_ff, a=a))
        out[xid] = ("activation", dec.swiglu_mul(N=N, d_ff=d_ff, a=a))
        return out

    zero, one = parts(0), parts(1)
    for node_id, (category, f0) in zero.items():
        tb.add(node_id, category, affine(f0, one[node_id][1], times=calls, sum_k=rows))
        tb.node(node_id, calls=calls)
    for name, d_in, d_out in (("gate_proj", d, d_ff), ("up_proj", d, d_ff), ("down_proj", d_ff, d)):
        w0 = fz.linear_layer(N=0, d_in=d_in, d_out=d_out, bias=False, a=a).nbytes
        w1 = fz.linear_layer(N=1, d_in=d_in, d_out=d_out, bias=False, a=a).nbytes
        tb.add_fused(f"{xid}.{name}", calls * w0 + rows * (w1 - w0))


def _fused_experts(
    tb: Sink, cfg: DeepseekOCRConfig, xid: str, *, T: int, k: int, calls: int, rows: int, a: int
) -> None:
    """Routed experts fused in one module per layer (``k`` layers): the counting dispatch and combine, then per
    called expert one ``gate_up`` and one ``down`` product and the gating, over ``rows`` token rows in all."""
    d, k_top, Ie = cfg.hidden_size, cfg.num_experts_per_tok, cfg.moe_intermediate_size
    own = ocr2.expert_dispatch(T=T, d=d, k_top=k_top, a=a) + ocr2.expert_combine(T=T, d=d, k_top=k_top, a=a)
    tb.add(xid, "moe_routing", own, k)

    def expert(n: int) -> tuple[Cost, Cost]:
        products = linear(N=n, d_in=d, d_out=2 * Ie, bias=False, a=a, w=a) + linear(
            N=n, d_in=Ie, d_out=d, bias=False, a=a, w=a
        )
        gating = elementwise(n=n * Ie, read=2 * n * Ie * a, written=n * Ie * a)
        return products + gating, dec.swiglu_silu(N=n, d_ff=Ie, a=a)

    (x0, s0), (x1, s1) = expert(0), expert(1)
    tb.add(xid, "linear", affine(x0, x1, times=calls, sum_k=rows))
    tb.add(f"{xid}.act_fn", "activation", affine(s0, s1, times=calls, sum_k=rows))
    tb.node(f"{xid}.act_fn", calls=calls)
    w0 = fz.linear_layer(N=0, d_in=d, d_out=3 * Ie, bias=False, a=a).nbytes
    w1 = fz.linear_layer(N=1, d_in=d, d_out=3 * Ie, bias=False, a=a).nbytes
    tb.add_fused(xid, calls * w0 + rows * (w1 - w0))


def _attention_cores(
    tb: TreeBuilder, cfg: DeepseekOCRConfig, run: DecoderRun, lp: LanguagePass, *, eager: bool, a: int
) -> None:
    """The key-dependent parts of a stage summed over its passes: every layer's attention core, the KV held, and
    (a per-row mask, eager) the decode steps' masks."""
    B, q, H, Hkv, c = lp.B, lp.q, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    core = _core_total(cfg, run, lp, eager=eager, a=a)

    def layer(keys: int) -> fz.FusedLayer:
        return fz.decoder_attention_layer(B=B, q=q, k=keys, H=H, Hkv=Hkv, c=c, a=a, eager=eager)

    f0, f1 = layer(0).nbytes, layer(1).nbytes
    fused = lp.times * f0 + lp.sum_k * (f1 - f0)
    for members, _ in layer_groups(cfg):
        nid, L = f"{run.path(lp.stage)}.layers.{index_label(members)}.self_attn", len(members)
        tb.add(nid, "attention", core, L)
        tb.set_kv(nid, L * 2 * B * Hkv * lp.kv_end * c * a)
        tb.add_fused(nid, fused * L)
        tb.set_peak(nid, layer(lp.kv_end).live)
    if eager and run.mask_per_row and lp.stage == "decode":
        m0, m1 = ocr2.causal_mask_eager(B=B, q=q, k=0, a=a), ocr2.causal_mask_eager(B=B, q=q, k=1, a=a)
        tb.add(run.path(lp.stage), "elementwise", affine(m0, m1, times=lp.times, sum_k=lp.sum_k))


def _core_total(cfg: DeepseekOCRConfig, run: DecoderRun, lp: LanguagePass, *, eager: bool, a: int) -> tuple[int, ...]:
    """The attention core of one layer summed over the stage's passes (affine in the key count).  Eager: masked
    under a multi-token query, or always with a per-row mask (then read once per row, not broadcast)."""
    B, q, H, c = lp.B, lp.q, cfg.num_attention_heads, cfg.head_dim

    def core(keys: int) -> Cost:
        if not eager:
            return dec.attention_flash(B=B, q=q, k=keys, H=H, c=c, a=a, causal=q > 1)
        cost = dec.attention_eager(B=B, q=q, k=keys, H=H, c=c, a=a, masked=run.mask_per_row or q > 1)
        if run.mask_per_row:
            cost += Cost(bytes_read=(B - 1) * q * keys * a)
        return cost + dec.head_merge(N=B * q, d=H * c, a=a) if q > 1 else cost

    if lp.times == 1:
        return vec(core(lp.sum_k))
    return affine(core(0), core(1), times=lp.times, sum_k=lp.sum_k)


def _decoder_weights(tb: TreeBuilder, cfg: DeepseekOCRConfig, run: DecoderRun, stage: str, *, a: int) -> None:
    """Parameter bytes of every language-model module called in ``stage`` (all experts of a called layer)."""
    d, V, c, Ie, E = cfg.hidden_size, cfg.vocab_size, cfg.head_dim, cfg.moe_intermediate_size, cfg.n_routed_experts
    d_kv, lm = cfg.num_key_value_heads * c, run.path(stage)
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
            for name in _SWIGLU:
                tb.add_weights(f"{mlp}.{name}", L * d * cfg.intermediate_size * a)
            continue
        tb.add_weights(f"{mlp}.gate", L * E * d * a)
        if run.fused_experts:
            tb.add_weights(f"{mlp}.experts", L * E * 3 * d * Ie * a)
        else:
            for name in _SWIGLU:
                tb.add_weights(f"{mlp}.experts.{index_label(list(range(E)))}.{name}", L * E * d * Ie * a)
        if cfg.n_shared_experts:
            for name in _SWIGLU:
                tb.add_weights(f"{mlp}.shared_experts.{name}", L * d * Ie * cfg.n_shared_experts * a)


def decoder_params(cfg: DeepseekOCRConfig) -> int:
    """Parameter count of the decoder: embedding, lm_head, final norm and every layer (attention, norms, dense MLP
    or gate + routed + shared experts)."""
    d, V, dh = cfg.hidden_size, cfg.vocab_size, cfg.head_dim
    attn = 2 * d * d + 2 * d * cfg.num_key_value_heads * dh + 2 * d
    total = 2 * V * d + d
    for i in range(cfg.num_hidden_layers):
        total += attn
        if cfg.is_moe_layer(i):
            Ie, E = cfg.moe_intermediate_size, cfg.n_routed_experts
            total += E * 3 * d * Ie + E * d + 3 * d * Ie * cfg.n_shared_experts  # experts, gate, shared
        else:
            total += 3 * d * cfg.intermediate_size
    return total
