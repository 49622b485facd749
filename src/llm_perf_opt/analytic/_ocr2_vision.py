"""DeepSeek-OCR-2's ``vision`` and ``projector`` stages, charged to the ids its trace has.

Per prefill the vision tower runs once on the batch's global views (``B`` views of ``G`` px) and, when pages are
tiled, once more on all tiles (``B*n`` views of 768 px): SAM ViT-B (v1's blocks; transformers' rel-pos tables and
LayerNorm neck; two stride-2 convs) -> ``cat`` with the learnable queries -> the Qwen2 encoder (block-causal mask,
shared rotary table) -> the query half.  The projector stage: ``multi_modal_projector`` per call, the view features
with the separator, their injection into the embeddings, and (eager) the text model's prefill causal mask, built in
``model.language_model`` after the projector anchor.
"""

from __future__ import annotations

from attrs import frozen

from llm_perf_opt.analytic._vision import index_label, put_fused
from llm_perf_opt.analytic.formulas import common, ocr2
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import qwen2_vision as qv
from llm_perf_opt.analytic.formulas import sam as samf
from llm_perf_opt.analytic.tree import Sink
from llm_perf_opt.config import DeepseekOCR2Config

__all__ = ["ENC", "SAM", "TOWER", "ViewCall", "add_ocr2_projector_stage", "add_ocr2_vision_stage", "view_side_tokens"]

TOWER = "vision/model.vision_tower"
SAM = f"{TOWER}.sam_encoder"
ENC = f"{TOWER}.vision_encoder"


@frozen(kw_only=True)
class ViewCall:
    """One vision-tower call: ``B`` views of side ``R`` px."""

    B: int
    R: int


def view_side_tokens(cfg: DeepseekOCR2Config, R: int) -> tuple[int, int, int]:
    """Patch grid ``g``, proj-conv output sides ``h2`` and ``t`` (tokens ``T_s = t^2``) for a view of side ``R``."""
    g = R // cfg.sam.patch_size
    h2 = -(-g // 2)
    return g, h2, -(-h2 // 2)


def add_ocr2_vision_stage(tb: Sink, cfg: DeepseekOCR2Config, calls: list[ViewCall], *, eager: bool, a: int) -> None:
    """Every vision-tower call of the prefill (see the module docstring)."""
    for call in calls:
        tb.node(TOWER, calls=1)
        _sam(tb, cfg, call, eager=eager, a=a)
        t = view_side_tokens(cfg, call.R)[2]
        T_s, D = t * t, cfg.encoder.hidden_size
        tb.add(TOWER, "data_movement", qv.query_concat(B=call.B, T_s=T_s, Q=T_s, D=D, a=a))
        _encoder(tb, cfg, B=call.B, T_s=T_s, eager=eager, a=a)


def _sam(tb: Sink, cfg: DeepseekOCR2Config, call: ViewCall, *, eager: bool, a: int) -> None:
    s = cfg.sam
    B = call.B
    g, h2, h3 = view_side_tokens(cfg, call.R)
    P = s.img_size // s.patch_size
    D, out, (mid, top) = s.embed_dim, s.out_chans, s.downsample_channels
    for name in ("", ".patch_embed", ".patch_embed.projection", ".neck", ".proj"):
        tb.node(SAM + name, calls=1)
    tb.node(f"{SAM}.layers")
    tb.add(f"{SAM}.patch_embed.projection", "conv2d", samf.patch_conv(B=B, R=call.R, p=s.patch_size, C_in=3, D=D, a=a))
    tb.add(SAM, "data_movement", samf.abs_pos_resize(g=g, P=P, D=D, a=a))
    tb.add(SAM, "elementwise", samf.abs_pos_add(B=B, g=g, P=P, D=D, a=a))
    patch = fz.conv_layer(B=B, C_in=3, C_out=D, n_in=call.R**2, n_out=g * g, taps=s.patch_size**2, bias=True, a=a)
    put_fused(tb, f"{SAM}.patch_embed.projection", patch, 1)
    windowed = [i for i in range(s.depth) if i not in s.global_attn_indexes]
    global_ = [i for i in range(s.depth) if i in s.global_attn_indexes]
    for members, win in ((windowed, True), (global_, False)):
        if members:
            nid = f"{SAM}.layers.{index_label(members)}"
            _sam_layers(tb, cfg, nid, B=B, g=g, k=len(members), win=win, eager=eager, a=a)
    convs = (
        (
            "neck.conv1",
            common.conv2d(B=B, C_in=D, C_out=out, H_in=g, W_in=g, H_out=g, W_out=g, kh=1, kw=1, bias=False, a=a),
        ),
        (
            "neck.conv2",
            common.conv2d(B=B, C_in=out, C_out=out, H_in=g, W_in=g, H_out=g, W_out=g, kh=3, kw=3, bias=False, a=a),
        ),
        (
            "proj.conv1",
            common.conv2d(B=B, C_in=out, C_out=mid, H_in=g, W_in=g, H_out=h2, W_out=h2, kh=3, kw=3, bias=False, a=a),
        ),
        (
            "proj.conv2",
            common.conv2d(B=B, C_in=mid, C_out=top, H_in=h2, W_in=h2, H_out=h3, W_out=h3, kh=3, kw=3, bias=False, a=a),
        ),
    )
    for name, cost in convs:
        tb.add(f"{SAM}.{name}", "conv2d", cost)
        tb.node(f"{SAM}.{name}", calls=1)
    for name in ("neck.layer_norm1", "neck.layer_norm2"):
        tb.add(f"{SAM}.{name}", "norm", common.layer_norm(N=B * g * g, d=out, a=a))
        tb.node(f"{SAM}.{name}", calls=1)
        put_fused(tb, f"{SAM}.{name}", fz.norm_layer(N=B * g * g, d=out, affine=2, a=a), 1)
    for name, c_in, c_out, n_in, n_out, taps in (
        ("neck.conv1", D, out, g * g, g * g, 1),
        ("neck.conv2", out, out, g * g, g * g, 9),
        ("proj.conv1", out, mid, g * g, h2 * h2, 9),
        ("proj.conv2", mid, top, h2 * h2, h3 * h3, 9),
    ):
        conv = fz.conv_layer(B=B, C_in=c_in, C_out=c_out, n_in=n_in, n_out=n_out, taps=taps, bias=False, a=a)
        put_fused(tb, f"{SAM}.{name}", conv, 1)


def _sam_layers(
    tb: Sink, cfg: DeepseekOCR2Config, nid: str, *, B: int, g: int, k: int, win: bool, eager: bool, a: int
) -> None:
    """``k`` identical SAM layers (one call each) on ``B`` views with a ``g x g`` patch grid."""
    s = cfg.sam
    D, h, c, m, w = s.embed_dim, s.num_heads, s.head_dim, s.mlp_dim, s.window_size
    gp = samf.padded_grid(g=g, w=w) if win else g
    side = w if win else g
    Bw = B * (gp // w) ** 2 if win else B
    rows = (2 * w - 1) if win else (2 * (s.img_size // s.patch_size) - 1)
    for name in ("", ".layer_norm1", ".attn", ".attn.qkv", ".attn.proj", ".layer_norm2", ".mlp", ".mlp.lin1"):
        tb.node(nid + name, calls=k)
    tb.node(f"{nid}.mlp.lin2", calls=k)
    tb.node(f"{nid}.mlp.act", calls=k)
    N, N_attn = B * g * g, Bw * side * side
    for name in ("layer_norm1", "layer_norm2"):
        tb.add(f"{nid}.{name}", "norm", samf.block_norm(N=N, D=D, a=a), k)
        put_fused(tb, f"{nid}.{name}", fz.norm_layer(N=N, d=D, affine=2, a=a), k)
    for name, cost in samf.block_linears(N_attn=N_attn, N_mlp=N, D=D, m=m, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, k)
    tb.add(f"{nid}.mlp.act", "activation", samf.gelu(n=N * m, a=a), k)
    attn = ocr2.rel_pos_table(s=side, rows=rows, c=c, a=a).scaled(2)
    attn += ocr2.rel_pos_bias(Bw=Bw, h=h, s=side, c=c, a=a)
    attn += samf.attention_core(Bw=Bw, h=h, s=side, c=c, a=a, eager=eager)
    tb.add(f"{nid}.attn", "attention", attn, k)
    if win:
        tb.add(nid, "data_movement", samf.window_copies(B=B, g=g, w=w, D=D, a=a), k)
    tb.add(nid, "elementwise", samf.residual_add(n=N * D, a=a), 2 * k)
    for name, n_rows, d_in, d_out in (
        ("attn.qkv", N_attn, D, 3 * D),
        ("attn.proj", N_attn, D, D),
        ("mlp.lin1", N, D, m),
        ("mlp.lin2", N, m, D),
    ):
        put_fused(tb, f"{nid}.{name}", fz.linear_layer(N=n_rows, d_in=d_in, d_out=d_out, bias=True, a=a), k)
    core = fz.attention_layer(BH=Bw * h, q=side * side, k=side * side, d=c, a=a, eager=eager, masked=True)
    put_fused(tb, f"{nid}.attn", core, k)
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * k)


def _encoder(tb: Sink, cfg: DeepseekOCR2Config, *, B: int, T_s: int, eager: bool, a: int) -> None:
    """The Qwen2 encoder on ``B`` views of ``T_s`` SAM tokens + ``T_s`` queries."""
    e = cfg.encoder
    L, D, H, Hkv, c, F = (
        2 * T_s,
        e.hidden_size,
        e.num_attention_heads,
        e.num_key_value_heads,
        e.head_dim,
        e.intermediate_size,
    )
    N, n = B * L, e.num_hidden_layers
    for name in ("", ".rotary_emb", ".norm"):
        tb.node(ENC + name, calls=1)
    tb.node(f"{ENC}.layers")
    tb.add(ENC, "elementwise", qv.block_mask(B=B, L=L, T_s=T_s, eager=eager, a=a))
    tb.add(f"{ENC}.rotary_emb", "attention", qv.rotary_table(N=L, c=c, a=a))
    tb.add(f"{ENC}.norm", "norm", dec.rms_norm(N=N, d=D, a=a))
    put_fused(tb, f"{ENC}.norm", fz.norm_layer(N=N, d=D, affine=1, a=a), 1)
    nid = f"{ENC}.layers.{index_label(list(range(n)))}"
    for name in ("", ".input_layernorm", ".post_attention_layernorm", ".self_attn", ".mlp", ".mlp.act_fn"):
        tb.node(nid + name, calls=n)
    for name in (".input_layernorm", ".post_attention_layernorm"):
        tb.add(nid + name, "norm", dec.rms_norm(N=N, d=D, a=a), n)
        put_fused(tb, nid + name, fz.norm_layer(N=N, d=D, affine=1, a=a), n)
    for name, d_out, bias in (("q_proj", H * c, True), ("k_proj", Hkv * c, True), ("v_proj", Hkv * c, True)):
        tb.add(f"{nid}.self_attn.{name}", "linear", common.linear(N=N, d_in=D, d_out=d_out, bias=bias, a=a, w=a), n)
        tb.node(f"{nid}.self_attn.{name}", calls=n)
        put_fused(tb, f"{nid}.self_attn.{name}", fz.linear_layer(N=N, d_in=D, d_out=d_out, bias=bias, a=a), n)
    tb.add(f"{nid}.self_attn.o_proj", "linear", common.linear(N=N, d_in=H * c, d_out=D, bias=False, a=a, w=a), n)
    tb.node(f"{nid}.self_attn.o_proj", calls=n)
    put_fused(tb, f"{nid}.self_attn.o_proj", fz.linear_layer(N=N, d_in=H * c, d_out=D, bias=False, a=a), n)
    own = qv.rope_shared(N=N, H=H, c=c, cos_rows=L, a=a) + qv.rope_shared(N=N, H=Hkv, c=c, cos_rows=L, a=a)
    own += qv.repeat_kv(B=B, L=L, H=H, H_kv=Hkv, c=c, a=a)
    if eager:
        own += qv.gqa_attention_eager(B=B, L=L, H=H, c=c, a=a)
    else:
        own += qv.gqa_attention_flash(B=B, L=L, H=H, c=c, a=a)
    tb.add(f"{nid}.self_attn", "attention", own, n)
    put_fused(tb, f"{nid}.self_attn", fz.attention_layer(BH=B * H, q=L, k=L, d=c, a=a, eager=eager, masked=True), n)
    for name, cost in dec.swiglu_linears(N=N, d=D, d_ff=F, a=a).items():
        tb.add(f"{nid}.mlp.{name}", "linear", cost, n)
        tb.node(f"{nid}.mlp.{name}", calls=n)
    for name, d_in, d_out in (("gate_proj", D, F), ("up_proj", D, F), ("down_proj", F, D)):
        put_fused(tb, f"{nid}.mlp.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=False, a=a), n)
    tb.add(f"{nid}.mlp.act_fn", "activation", dec.swiglu_silu(N=N, d_ff=F, a=a), n)
    tb.add(f"{nid}.mlp", "activation", dec.swiglu_mul(N=N, d_ff=F, a=a), n)
    tb.add(nid, "elementwise", dec.residual_add(n=N * D, a=a), 2 * n)
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * n)


def add_ocr2_projector_stage(
    tb: Sink, cfg: DeepseekOCR2Config, calls: list[ViewCall], *, B: int, S: int, N_img: int, eager: bool, a: int
) -> None:
    """Projector per vision call, the view features, their injection and (eager) the prefill causal mask."""
    d_in, d = cfg.projector_in, cfg.projector_out
    node = "projector/model.multi_modal_projector"
    for call in calls:
        t = view_side_tokens(cfg, call.R)[2]
        tb.node(node, calls=1)
        if call.B > 1:
            cost = ocr2.projector_batched(B=call.B, n=t * t, d_in=d_in, d=d, a=a)
        else:
            cost = common.linear(N=t * t, d_in=d_in, d_out=d, bias=True, a=a, w=a)
        tb.add(node, "linear", cost)
        put_fused(tb, node, fz.linear_layer(N=call.B * t * t, d_in=d_in, d_out=d, bias=True, a=a), 1)
    tb.add("projector/model", "data_movement", ocr2.image_features(B=B, N_img=N_img, d=d, a=a))
    tb.add("projector/model", "data_movement", ocr2.placeholder_scatter(B=B, S=S, N_img=N_img, d=d, a=a))
    put_fused(tb, "projector/model", fz.layer(weights=d * a, inputs=B * N_img * d * a, outputs=B * S * d * a), 1)
    if eager:  # SDPA prefill needs no mask (is_causal): then no op runs there and the trace has no such node
        tb.node("projector/model.language_model", calls=1)
        tb.add("projector/model.language_model", "elementwise", ocr2.causal_mask_eager(B=B, q=S, k=S, a=a))
