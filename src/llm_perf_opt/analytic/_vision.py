"""Composition of the ``vision`` and ``projector`` stages: SAM and CLIP per view batch, fusion, projector, view
tokens and injection, charged to the tracer's module ids (docs/architecture.md "Module ids").

Per page (batch row) the encoders run once on the crop batch (if the page is cut) and once on the global view;
the batch repeats all of it ``B_rows`` times.  Categories follow the tracer: an op takes the category of the
innermost module class it runs in, ops in unmatched containers (SAM ``Block``, CLIP block, ``DeepseekOCRModel``)
that of their op family.
"""

from __future__ import annotations

from attrs import frozen

from llm_perf_opt.analytic._parts import index_label, put_fused
from llm_perf_opt.analytic._sam import V1_SAM, add_sam, sam_sides
from llm_perf_opt.analytic.formulas import clip as clipf
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import projector as projf
from llm_perf_opt.analytic.tree import Sink
from llm_perf_opt.config import DeepseekOCRConfig

__all__ = ["CLIP", "EncoderCall", "add_projector_stage", "add_vision_stage"]

CLIP = "vision/model.vision_model"


@frozen(kw_only=True)
class EncoderCall:
    """One SAM + CLIP + projector call: ``B`` views of side ``R`` px, repeated ``times`` (batch rows)."""

    B: int
    R: int
    times: int


def add_vision_stage(tb: Sink, cfg: DeepseekOCRConfig, calls: list[EncoderCall], *, eager: bool, a: int) -> None:
    """All encoder calls of the workload (crop batch and global view per row), plus the feature concat."""
    for call in calls:
        add_sam(tb, cfg.sam, V1_SAM, B=call.B, R=call.R, k=call.times, eager=eager, a=a)
        t = sam_sides(cfg.sam, call.R)[2]
        _clip(tb, cfg, call, t=t, eager=eager, a=a)
        n = t * t
        concat = projf.feature_concat(
            B=call.B, n=n, D_clip=cfg.clip.hidden_size, C_sam=cfg.sam.downsample_channels[1], a=a
        )
        tb.add("vision/model", "data_movement", concat, call.times)
        both = call.B * n * (cfg.clip.hidden_size + cfg.sam.downsample_channels[1]) * a
        put_fused(tb, "vision/model", fz.layer(weights=0, inputs=both, outputs=both), call.times)


def _clip(tb: Sink, cfg: DeepseekOCRConfig, call: EncoderCall, *, t: int, eager: bool, a: int) -> None:
    c = cfg.clip
    B, k = call.B, call.times
    L, D, F, H = t * t + 1, c.hidden_size, c.ffn_hidden_size, c.num_attention_heads
    P = c.image_size // c.patch_size
    for name in ("", ".embeddings", ".embeddings.position_embedding", ".pre_layrnorm", ".transformer"):
        tb.node(CLIP + name, calls=k)
    tb.add(f"{CLIP}.embeddings.position_embedding", "embedding", clipf.position_lookup(P=P, D=D, a=a), k)
    tb.add(f"{CLIP}.embeddings", "embedding", clipf.embeddings_own(B=B, t=t, P=P, D=D, a=a), k)
    tb.add(f"{CLIP}.pre_layrnorm", "norm", clipf.layer_norm_clip(B=B, L=L, D=D, a=a), k)
    put_fused(
        tb, f"{CLIP}.embeddings.position_embedding", fz.layer(weights=(P * P + 1) * D * a, inputs=0, outputs=0), k
    )
    put_fused(tb, f"{CLIP}.embeddings", fz.layer(weights=D * a, inputs=B * t * t * D * a, outputs=B * L * D * a), k)
    put_fused(tb, f"{CLIP}.pre_layrnorm", fz.norm_layer(N=B * L, d=D, affine=2, a=a), k)
    nid = f"{CLIP}.transformer.layers.{index_label(list(range(c.num_layers)))}"
    n = k * c.num_layers
    for name in ("", ".layer_norm1", ".layer_norm2"):
        tb.node(nid + name, calls=n)
    for name, cost in clipf.layer_linears(B=B, L=L, D=D, F=F, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, n)
        tb.node(f"{nid}.{name}", calls=n)
    for name in (".layer_norm1", ".layer_norm2"):
        tb.add(nid + name, "norm", clipf.layer_norm_clip(B=B, L=L, D=D, a=a), n)
    # self_attn and mlp run through ``.forward`` (no hooks): their own ops belong to the block, by op family
    for parts in (
        clipf.attention_core(B=B, L=L, H=H, c=c.head_dim, a=a, eager=eager),
        clipf.quick_gelu(N=B * L, F=F, a=a),
    ):
        for category, cost in parts.items():
            tb.add(nid, category, cost, n)
    tb.add(nid, "elementwise", clipf.residual_add(n=B * L * D, a=a), 2 * n)
    N = B * L
    for name, d_in, d_out in (
        ("self_attn.qkv_proj", D, 3 * D),
        ("self_attn.out_proj", D, D),
        ("mlp.fc1", D, F),
        ("mlp.fc2", F, D),
    ):
        put_fused(tb, f"{nid}.{name}", fz.linear_layer(N=N, d_in=d_in, d_out=d_out, bias=True, a=a), n)
    for name in ("layer_norm1", "layer_norm2"):
        put_fused(tb, f"{nid}.{name}", fz.norm_layer(N=N, d=D, affine=2, a=a), n)
    core = fz.attention_layer(BH=B * H, q=L, k=L, d=c.head_dim, a=a, eager=eager, masked=False)
    put_fused(tb, nid, core, n)
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * n)


def add_projector_stage(
    tb: Sink, cfg: DeepseekOCRConfig, calls: list[EncoderCall], *, grid: tuple[int, int], S: int, a: int
) -> None:
    """Projector per encoder call, then per row the view tokens and the injection into the embeddings."""
    d = cfg.projector.n_embed
    rows = calls[0].times
    sides = []
    for call in calls:
        t = sam_sides(cfg.sam, call.R)[2]
        sides.append(t)
        cost = projf.projector_linear(B=call.B, n=t * t, d_in=cfg.projector.input_dim, d=d, a=a)
        tb.add("projector/model.projector.layers", "linear", cost, call.times)
        tb.node("projector/model.projector", calls=call.times)
        tb.node("projector/model.projector.layers", calls=call.times)
        proj = fz.linear_layer(N=call.B * t * t, d_in=cfg.projector.input_dim, d_out=d, bias=True, a=a)
        put_fused(tb, "projector/model.projector.layers", proj, call.times)
    i, j = grid if len(calls) == 2 else (1, 1)
    t_g, t_c = sides[-1], sides[0]
    tokens = projf.view_tokens(i=i, j=j, t_c=t_c, t_g=t_g, d=d, a=a)
    n_img = (t_c * j) * (t_c * i + 1) * (len(calls) == 2) + t_g * (t_g + 1) + 1
    tb.add("projector/model", "data_movement", tokens + projf.injection(N_img=n_img, S=S, d=d, a=a), rows)
    features = sum(call.B * t * t for call, t in zip(calls, sides, strict=True)) * d * a
    put_fused(tb, "projector/model", fz.layer(weights=2 * d * a, inputs=features, outputs=n_img * d * a), rows)
