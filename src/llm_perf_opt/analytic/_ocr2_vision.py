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

from llm_perf_opt.analytic._parts import index_label, put_fused, swiglu
from llm_perf_opt.analytic._sam import OCR2_SAM, add_sam, sam_sides
from llm_perf_opt.analytic.formulas import common, ocr2
from llm_perf_opt.analytic.formulas import decoder as dec
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import qwen2_vision as qv
from llm_perf_opt.analytic.tree import Sink
from llm_perf_opt.config import DeepseekOCR2Config

__all__ = ["ENC", "TOWER", "ViewCall", "add_ocr2_projector_stage", "add_ocr2_vision_stage"]

TOWER = "vision/model.vision_tower"
ENC = f"{TOWER}.vision_encoder"


@frozen(kw_only=True)
class ViewCall:
    """One vision-tower call: ``B`` views of side ``R`` px."""

    B: int
    R: int


def add_ocr2_vision_stage(tb: Sink, cfg: DeepseekOCR2Config, calls: list[ViewCall], *, eager: bool, a: int) -> None:
    """Every vision-tower call of the prefill (see the module docstring)."""
    for call in calls:
        tb.node(TOWER, calls=1)
        add_sam(tb, cfg.sam, OCR2_SAM, B=call.B, R=call.R, k=1, eager=eager, a=a)
        t = sam_sides(cfg.sam, call.R)[2]
        T_s, D = t * t, cfg.encoder.hidden_size
        tb.add(TOWER, "data_movement", qv.query_concat(B=call.B, T_s=T_s, Q=T_s, D=D, a=a))
        _encoder(tb, cfg, B=call.B, T_s=T_s, eager=eager, a=a)


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
    for name in ("", ".input_layernorm", ".post_attention_layernorm", ".self_attn"):
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
    swiglu(tb, f"{nid}.mlp", N=N, d=D, d_ff=F, calls=n, a=a)
    tb.add(nid, "elementwise", dec.residual_add(n=N * D, a=a), 2 * n)
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * n)


def add_ocr2_projector_stage(
    tb: Sink, cfg: DeepseekOCR2Config, calls: list[ViewCall], *, B: int, S: int, N_img: int, eager: bool, a: int
) -> None:
    """Projector per vision call, the view features, their injection and (eager) the prefill causal mask."""
    d_in, d = cfg.projector_in, cfg.projector_out
    node = "projector/model.multi_modal_projector"
    for call in calls:
        t = sam_sides(cfg.sam, call.R)[2]
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
