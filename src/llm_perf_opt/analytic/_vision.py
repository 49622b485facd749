"""Composition of the ``vision`` and ``projector`` stages: SAM and CLIP per view batch, fusion, projector, view
tokens and injection, charged to the tracer's module ids (docs/architecture.md "Module ids").

Per page (batch row) the encoders run once on the crop batch (if the page is cut) and once on the global view;
the batch repeats all of it ``B_rows`` times.  Categories follow the tracer: an op takes the category of the
innermost module class it runs in, ops in unmatched containers (SAM ``Block``, CLIP block, ``DeepseekOCRModel``)
that of their op family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from llm_perf_opt.analytic.formulas import clip as clipf
from llm_perf_opt.analytic.formulas import common
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import projector as projf
from llm_perf_opt.analytic.formulas import sam as samf
from llm_perf_opt.analytic.tree import Sink, TreeBuilder
from llm_perf_opt.config import DeepseekOCRConfig

__all__ = ["EncoderCall", "add_projector_stage", "add_sam_weights", "add_vision_stage", "index_label", "put_fused"]

SAM = "vision/model.sam_model"
CLIP = "vision/model.vision_model"


def index_label(indices: list[int] | tuple[int, ...]) -> str:
    """The tracer's group label: ``{a..b}`` when contiguous, ``{a,b,c}`` otherwise, a lone index as itself."""
    idx = sorted(indices)
    if len(idx) == 1:
        return str(idx[0])
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{{{idx[0]}..{idx[-1]}}}"
    return "{" + ",".join(str(i) for i in idx) + "}"


def put_fused(tb: Sink, node_id: str, fl: fz.FusedLayer, times: int) -> None:
    """Charge ``times`` calls of a fused layer to ``node_id`` (bytes add up, the working set is a maximum)."""
    tb.add_fused(node_id, fl.nbytes * times)
    tb.set_peak(node_id, fl.live)


@frozen(kw_only=True)
class EncoderCall:
    """One SAM + CLIP + projector call: ``B`` views of side ``R`` px, repeated ``times`` (batch rows)."""

    B: int
    R: int
    times: int


def _sam_side(cfg: DeepseekOCRConfig, R: int) -> tuple[int, int, int]:
    """Patch grid ``g``, net_2 output side and net_3 output side (``t``) for a view of side ``R``."""
    g = R // cfg.sam.patch_size
    h2 = -(-g // 2)
    return g, h2, -(-h2 // 2)


def add_vision_stage(tb: Sink, cfg: DeepseekOCRConfig, calls: list[EncoderCall], *, eager: bool, a: int) -> None:
    """All encoder calls of the workload (crop batch and global view per row), plus the feature concat."""
    for call in calls:
        _sam(tb, cfg, call, eager=eager, a=a)
        t = _sam_side(cfg, call.R)[2]
        _clip(tb, cfg, call, t=t, eager=eager, a=a)
        n = t * t
        concat = projf.feature_concat(
            B=call.B, n=n, D_clip=cfg.clip.hidden_size, C_sam=cfg.sam.downsample_channels[1], a=a
        )
        tb.add("vision/model", "data_movement", concat, call.times)
        both = call.B * n * (cfg.clip.hidden_size + cfg.sam.downsample_channels[1]) * a
        put_fused(tb, "vision/model", fz.layer(weights=0, inputs=both, outputs=both), call.times)


def _sam(tb: Sink, cfg: DeepseekOCRConfig, call: EncoderCall, *, eager: bool, a: int) -> None:
    s = cfg.sam
    B, k = call.B, call.times
    g, h2, h3 = _sam_side(cfg, call.R)
    P = s.img_size // s.patch_size
    D, out, (mid, top) = s.embed_dim, s.out_chans, s.downsample_channels
    tb.node(SAM, calls=k)
    tb.node(f"{SAM}.patch_embed", calls=k)
    conv = samf.patch_conv(B=B, R=call.R, p=s.patch_size, C_in=s.in_chans, D=D, a=a)
    tb.add(f"{SAM}.patch_embed.proj", "conv2d", conv, k)
    tb.node(f"{SAM}.patch_embed.proj", calls=k)
    tb.add(SAM, "data_movement", samf.abs_pos_resize(g=g, P=P, D=D, a=a), k)
    tb.add(SAM, "elementwise", samf.abs_pos_add(B=B, g=g, P=P, D=D, a=a), k)
    n_px, n = call.R * call.R, B * g * g * D
    patch = fz.conv_layer(B=B, C_in=s.in_chans, C_out=D, n_in=n_px, n_out=g * g, taps=s.patch_size**2, bias=True, a=a)
    put_fused(tb, f"{SAM}.patch_embed.proj", patch, k)
    put_fused(tb, SAM, fz.layer(weights=P * P * D * a, inputs=n * a, outputs=n * a), k)
    windowed = [i for i in range(s.depth) if i not in s.global_attn_indexes]
    global_ = [i for i in range(s.depth) if i in s.global_attn_indexes]
    for members, win in ((windowed, True), (global_, False)):
        if members:
            _sam_blocks(
                tb, cfg, f"{SAM}.blocks.{index_label(members)}", B=B, g=g, k=k * len(members), win=win, eager=eager, a=a
            )
    tb.node(f"{SAM}.neck", calls=k)
    neck = [
        common.conv2d(B=B, C_in=D, C_out=out, H_in=g, W_in=g, H_out=g, W_out=g, kh=1, kw=1, bias=False, a=a),
        samf.layer_norm2d(B=B, C=out, H=g, W=g, a=a),
        common.conv2d(B=B, C_in=out, C_out=out, H_in=g, W_in=g, H_out=g, W_out=g, kh=3, kw=3, bias=False, a=a),
        samf.layer_norm2d(B=B, C=out, H=g, W=g, a=a),
    ]
    neck_fused = [
        fz.conv_layer(B=B, C_in=D, C_out=out, n_in=g * g, n_out=g * g, taps=1, bias=False, a=a),
        fz.norm_layer(N=B * g * g, d=out, affine=2, a=a),
        fz.conv_layer(B=B, C_in=out, C_out=out, n_in=g * g, n_out=g * g, taps=9, bias=False, a=a),
        fz.norm_layer(N=B * g * g, d=out, affine=2, a=a),
    ]
    for i, cost in enumerate(neck):
        tb.add(f"{SAM}.neck.{i}", "conv2d" if i % 2 == 0 else "norm", cost, k)
        tb.node(f"{SAM}.neck.{i}", calls=k)
        put_fused(tb, f"{SAM}.neck.{i}", neck_fused[i], k)
    net2 = common.conv2d(B=B, C_in=out, C_out=mid, H_in=g, W_in=g, H_out=h2, W_out=h2, kh=3, kw=3, bias=False, a=a)
    net3 = common.conv2d(B=B, C_in=mid, C_out=top, H_in=h2, W_in=h2, H_out=h3, W_out=h3, kh=3, kw=3, bias=False, a=a)
    tb.add(f"{SAM}.net_2", "conv2d", net2, k)
    tb.node(f"{SAM}.net_2", calls=k)
    tb.add(SAM, "data_movement", samf.net_clone(B=B, C=mid, H=h2, a=a), k)
    tb.add(f"{SAM}.net_3", "conv2d", net3, k)
    tb.node(f"{SAM}.net_3", calls=k)
    net2_fused = fz.conv_layer(B=B, C_in=out, C_out=mid, n_in=g * g, n_out=h2 * h2, taps=9, bias=False, a=a)
    put_fused(tb, f"{SAM}.net_2", net2_fused, k)
    net3_fused = fz.conv_layer(B=B, C_in=mid, C_out=top, n_in=h2 * h2, n_out=h3 * h3, taps=9, bias=False, a=a)
    put_fused(tb, f"{SAM}.net_3", net3_fused, k)


def _sam_blocks(
    tb: Sink, cfg: DeepseekOCRConfig, nid: str, *, B: int, g: int, k: int, win: bool, eager: bool, a: int
) -> None:
    """A group of identical blocks, ``k`` calls in all (members x encoder calls)."""
    s = cfg.sam
    D, h, c, m, w = s.embed_dim, s.num_heads, s.head_dim, s.mlp_dim, s.window_size
    gp = samf.padded_grid(g=g, w=w) if win else g
    side = w if win else g
    Bw = B * (gp // w) ** 2 if win else B
    rows = (2 * w - 1) if win else (2 * (s.img_size // s.patch_size) - 1)
    for name in (
        "",
        ".norm1",
        ".attn",
        ".attn.qkv",
        ".attn.proj",
        ".norm2",
        ".mlp",
        ".mlp.lin1",
        ".mlp.lin2",
        ".mlp.act",
    ):
        tb.node(nid + name, calls=k)
    tb.add(f"{nid}.norm1", "norm", samf.block_norm(N=B * g * g, D=D, a=a), k)
    tb.add(f"{nid}.norm2", "norm", samf.block_norm(N=B * g * g, D=D, a=a), k)
    for name, cost in samf.block_linears(N_attn=Bw * side * side, N_mlp=B * g * g, D=D, m=m, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, k)
    tb.add(f"{nid}.mlp.act", "activation", samf.gelu(n=B * g * g * m, a=a), k)
    attn = samf.rel_pos_table(s=side, rows=rows, c=c, a=a).scaled(2) + samf.rel_pos_terms(Bw=Bw, h=h, s=side, c=c, a=a)
    attn += samf.attention_core(Bw=Bw, h=h, s=side, c=c, a=a, eager=eager)
    tb.add(f"{nid}.attn", "attention", attn, k)
    if win:
        tb.add(nid, "data_movement", samf.window_copies(B=B, g=g, w=w, D=D, a=a), k)
    tb.add(nid, "elementwise", samf.residual_add(n=B * g * g * D, a=a), 2 * k)
    N_attn, N = Bw * side * side, B * g * g
    for name in ("norm1", "norm2"):
        put_fused(tb, f"{nid}.{name}", fz.norm_layer(N=N, d=D, affine=2, a=a), k)
    put_fused(tb, f"{nid}.attn.qkv", fz.linear_layer(N=N_attn, d_in=D, d_out=3 * D, bias=True, a=a), k)
    put_fused(tb, f"{nid}.attn.proj", fz.linear_layer(N=N_attn, d_in=D, d_out=D, bias=True, a=a), k)
    put_fused(tb, f"{nid}.mlp.lin1", fz.linear_layer(N=N, d_in=D, d_out=m, bias=True, a=a), k)
    put_fused(tb, f"{nid}.mlp.lin2", fz.linear_layer(N=N, d_in=m, d_out=D, bias=True, a=a), k)
    core = fz.attention_layer(BH=Bw * h, q=side * side, k=side * side, d=c, a=a, eager=eager, masked=True)
    put_fused(tb, f"{nid}.attn", core, k)
    tb.add_fused(f"{nid}.attn", 2 * rows * c * a * k)  # the two rel-pos tables
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * k)


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
        t = _sam_side(cfg, call.R)[2]
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


def add_sam_weights(tb: TreeBuilder, s: Any, *, root: str, names: Mapping[str, str], a: int) -> None:
    """Parameter bytes of a SAM ViT-B encoder under ``root``.

    ``names`` maps v1 attribute names (``patch_embed.proj``, ``blocks``, ``norm1``, ``norm2``, ``neck.0``..``neck.3``,
    ``net_2``, ``net_3``) to the source's own; a missing key keeps the v1 name.  Windowed and global blocks are grouped
    as the tracer groups them; rel-pos tables have 2*side-1 rows.
    """

    def name(key: str) -> str:
        return names.get(key, key)

    D, m, out, (mid, top) = s.embed_dim, s.mlp_dim, s.out_chans, s.downsample_channels
    P = s.img_size // s.patch_size
    tb.add_weights(root, P * P * D * a)  # absolute position table
    tb.add_weights(f"{root}.{name('patch_embed.proj')}", (D * s.in_chans * s.patch_size**2 + D) * a)
    windowed = [i for i in range(s.depth) if i not in s.global_attn_indexes]
    global_ = [i for i in range(s.depth) if i in s.global_attn_indexes]
    for members, side in ((windowed, s.window_size), (global_, P)):
        if not members:
            continue
        nid, L = f"{root}.{name('blocks')}.{index_label(members)}", len(members)
        for key, n_params in (
            (name("norm1"), 2 * D),
            (name("norm2"), 2 * D),
            ("attn", 2 * (2 * side - 1) * s.head_dim),
            ("attn.qkv", D * 3 * D + 3 * D),
            ("attn.proj", D * D + D),
            ("mlp.lin1", D * m + m),
            ("mlp.lin2", m * D + D),
        ):
            tb.add_weights(f"{nid}.{key}", L * n_params * a)
    for key, n_params in (
        ("neck.0", out * D),
        ("neck.1", 2 * out),
        ("neck.2", out * out * 9),
        ("neck.3", 2 * out),
        ("net_2", mid * out * 9),
        ("net_3", top * mid * 9),
    ):
        tb.add_weights(f"{root}.{name(key)}", n_params * a)
