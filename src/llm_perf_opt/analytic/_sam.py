"""The SAM ViT-B encoder of both families, charged to the tracer's module ids.

v1 runs upstream's remote code (:data:`V1_SAM`); DeepSeek-OCR-2 transformers' port (:data:`OCR2_SAM`).  Both run
the same layers on the same shapes: patch conv, absolute positions (resized when the view is not 1024 px), windowed
and global blocks (grouped as the tracer groups them), a 1x1 + 3x3 conv neck with two norms, two stride-2 convs.
What differs is data in a :class:`SamRun`: where the encoder sits, the module names, the rel-pos formulas
(upstream's ``add_decomposed_rel_pos`` or transformers' bias), the neck norm (``LayerNorm2d`` written out upstream,
a channels-last ``LayerNorm`` in transformers) and two upstream-only charges (the ``x2.clone()`` between the stride-2
convs; the absolute-position add and the rel-pos tables as fused traffic).
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import field, frozen

from llm_perf_opt.analytic._parts import index_label, put_fused
from llm_perf_opt.analytic.formulas import common, ocr2
from llm_perf_opt.analytic.formulas import fused as fz
from llm_perf_opt.analytic.formulas import sam as samf
from llm_perf_opt.analytic.tree import Sink, TreeBuilder
from llm_perf_opt.config import SamConfig
from llm_perf_opt.core import Cost

__all__ = ["OCR2_SAM", "V1_SAM", "SamRun", "add_sam", "add_sam_weights", "sam_params", "sam_sides"]


@frozen(kw_only=True)
class SamRun:
    """Where a family's SAM encoder sits and what its code runs differently (see the module docstring)."""

    root: str = field(metadata={"help": "node id of the encoder"})
    names: tuple[tuple[str, str], ...] = field(
        default=(), metadata={"help": "v1 module name -> this source's, where they differ"}
    )
    rel_pos_table: Callable[..., Cost] = field(metadata={"help": "one get_rel_pos (s, rows, c, a)"})
    rel_pos_bias: Callable[..., Cost] = field(metadata={"help": "the decomposed rel-pos bias (Bw, h, s, c, a)"})
    norm_2d: bool = field(metadata={"help": "the neck norms are upstream's LayerNorm2d (else channels-last)"})
    upstream_extras: bool = field(
        metadata={"help": "net_2's output cloned; the position add and the rel-pos tables charged as fused traffic"}
    )

    def name(self, key: str) -> str:
        """This source's name for the v1 module name ``key``."""
        return dict(self.names).get(key, key)

    def path(self, key: str) -> str:
        """Node id of the module that v1 calls ``key``."""
        return f"{self.root}.{self.name(key)}"


V1_SAM = SamRun(
    root="vision/model.sam_model",
    rel_pos_table=samf.rel_pos_table,
    rel_pos_bias=samf.rel_pos_terms,
    norm_2d=True,
    upstream_extras=True,
)
OCR2_SAM = SamRun(
    root="vision/model.vision_tower.sam_encoder",
    names=(
        ("patch_embed.proj", "patch_embed.projection"),
        ("blocks", "layers"),
        ("norm1", "layer_norm1"),
        ("norm2", "layer_norm2"),
        ("neck.0", "neck.conv1"),
        ("neck.1", "neck.layer_norm1"),
        ("neck.2", "neck.conv2"),
        ("neck.3", "neck.layer_norm2"),
        ("net_2", "proj.conv1"),
        ("net_3", "proj.conv2"),
    ),
    rel_pos_table=ocr2.rel_pos_table,
    rel_pos_bias=ocr2.rel_pos_bias,
    norm_2d=False,
    upstream_extras=False,
)

_NECK = ("neck.0", "neck.1", "neck.2", "neck.3", "net_2", "net_3")


def sam_sides(s: SamConfig, R: int) -> tuple[int, int, int]:
    """Patch grid ``g``, the first stride-2 conv's output side and the second's (``t``; ``t^2`` tokens) for a view
    of side ``R`` px."""
    g = R // s.patch_size
    h2 = -(-g // 2)
    return g, h2, -(-h2 // 2)


def _block_groups(s: SamConfig) -> tuple[tuple[list[int], bool], ...]:
    """``(members, windowed)`` for the windowed and the global blocks."""
    windowed = [i for i in range(s.depth) if i not in s.global_attn_indexes]
    global_ = [i for i in range(s.depth) if i in s.global_attn_indexes]
    return (windowed, True), (global_, False)


def add_sam(tb: Sink, s: SamConfig, run: SamRun, *, B: int, R: int, k: int, eager: bool, a: int) -> None:
    """``k`` calls of the encoder on ``B`` views of side ``R`` px."""
    g = sam_sides(s, R)[0]
    P = s.img_size // s.patch_size
    D = s.embed_dim
    tb.node(run.root, calls=k)
    containers = {run.name(key).rpartition(".")[0] for key in ("patch_embed.proj", *_NECK)}
    for container in sorted(containers - {""}):
        tb.node(f"{run.root}.{container}", calls=k)
    proj = run.path("patch_embed.proj")
    tb.add(proj, "conv2d", samf.patch_conv(B=B, R=R, p=s.patch_size, C_in=s.in_chans, D=D, a=a), k)
    tb.node(proj, calls=k)
    tb.add(run.root, "data_movement", samf.abs_pos_resize(g=g, P=P, D=D, a=a), k)
    tb.add(run.root, "elementwise", samf.abs_pos_add(B=B, g=g, P=P, D=D, a=a), k)
    taps = s.patch_size**2
    put_fused(
        tb, proj, fz.conv_layer(B=B, C_in=s.in_chans, C_out=D, n_in=R * R, n_out=g * g, taps=taps, bias=True, a=a), k
    )
    if run.upstream_extras:
        n = B * g * g * D
        put_fused(tb, run.root, fz.layer(weights=P * P * D * a, inputs=n * a, outputs=n * a), k)
    for members, win in _block_groups(s):
        if members:
            nid = f"{run.path('blocks')}.{index_label(members)}"
            _blocks(tb, s, run, nid, B=B, g=g, k=k * len(members), win=win, eager=eager, a=a)
    _neck(tb, s, run, B=B, R=R, k=k, a=a)


def _neck(tb: Sink, s: SamConfig, run: SamRun, *, B: int, R: int, k: int, a: int) -> None:
    """The conv neck (1x1 conv, norm, 3x3 conv, norm) and the two stride-2 3x3 convs, ``k`` calls."""
    g, h2, h3 = sam_sides(s, R)
    D, out, (mid, top) = s.embed_dim, s.out_chans, s.downsample_channels
    norm = samf.layer_norm2d(B=B, C=out, H=g, W=g, a=a) if run.norm_2d else common.layer_norm(N=B * g * g, d=out, a=a)
    convs = {  # v1 name: (C_in, C_out, side in, side out, kernel side)
        "neck.0": (D, out, g, g, 1),
        "neck.2": (out, out, g, g, 3),
        "net_2": (out, mid, g, h2, 3),
        "net_3": (mid, top, h2, h3, 3),
    }
    for key in _NECK:
        nid = run.path(key)
        if key in convs:
            c_in, c_out, n_in, n_out, kw = convs[key]
            cost = common.conv2d(
                B=B,
                C_in=c_in,
                C_out=c_out,
                H_in=n_in,
                W_in=n_in,
                H_out=n_out,
                W_out=n_out,
                kh=kw,
                kw=kw,
                bias=False,
                a=a,
            )
            tb.add(nid, "conv2d", cost, k)
            fl = fz.conv_layer(B=B, C_in=c_in, C_out=c_out, n_in=n_in**2, n_out=n_out**2, taps=kw * kw, bias=False, a=a)
        else:
            tb.add(nid, "norm", norm, k)
            fl = fz.norm_layer(N=B * g * g, d=out, affine=2, a=a)
        tb.node(nid, calls=k)
        put_fused(tb, nid, fl, k)
        if key == "net_2" and run.upstream_extras:
            tb.add(run.root, "data_movement", samf.net_clone(B=B, C=mid, H=h2, a=a), k)


def _blocks(
    tb: Sink, s: SamConfig, run: SamRun, nid: str, *, B: int, g: int, k: int, win: bool, eager: bool, a: int
) -> None:
    """A group of identical blocks on ``B`` views with a ``g x g`` patch grid, ``k`` calls in all (members x encoder
    calls)."""
    D, h, c, m, w = s.embed_dim, s.num_heads, s.head_dim, s.mlp_dim, s.window_size
    gp = samf.padded_grid(g=g, w=w) if win else g
    side = w if win else g
    Bw = B * (gp // w) ** 2 if win else B
    rows = (2 * w - 1) if win else (2 * (s.img_size // s.patch_size) - 1)
    norms = (run.name("norm1"), run.name("norm2"))
    parts = ("", norms[0], "attn", "attn.qkv", "attn.proj", norms[1], "mlp", "mlp.lin1", "mlp.lin2", "mlp.act")
    for name in parts:
        tb.node(f"{nid}.{name}" if name else nid, calls=k)
    N_attn, N = Bw * side * side, B * g * g
    for name in norms:
        tb.add(f"{nid}.{name}", "norm", samf.block_norm(N=N, D=D, a=a), k)
        put_fused(tb, f"{nid}.{name}", fz.norm_layer(N=N, d=D, affine=2, a=a), k)
    for name, cost in samf.block_linears(N_attn=N_attn, N_mlp=N, D=D, m=m, a=a).items():
        tb.add(f"{nid}.{name}", "linear", cost, k)
    tb.add(f"{nid}.mlp.act", "activation", samf.gelu(n=N * m, a=a), k)
    attn = run.rel_pos_table(s=side, rows=rows, c=c, a=a).scaled(2) + run.rel_pos_bias(Bw=Bw, h=h, s=side, c=c, a=a)
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
    if run.upstream_extras:
        tb.add_fused(f"{nid}.attn", 2 * rows * c * a * k)  # the two rel-pos tables
    put_fused(tb, nid, fz.elementwise_layer(n=N * D, operands=2, a=a), 2 * k)


def add_sam_weights(tb: TreeBuilder, s: SamConfig, run: SamRun, *, a: int) -> None:
    """Parameter bytes of the encoder: position table, patch conv, blocks (rel-pos tables have ``2*side - 1`` rows),
    neck and stride-2 convs."""
    D, m, out, (mid, top) = s.embed_dim, s.mlp_dim, s.out_chans, s.downsample_channels
    P = s.img_size // s.patch_size
    tb.add_weights(run.root, P * P * D * a)  # absolute position table
    tb.add_weights(run.path("patch_embed.proj"), (D * s.in_chans * s.patch_size**2 + D) * a)
    for (members, _), side in zip(_block_groups(s), (s.window_size, P), strict=True):
        if not members:
            continue
        nid, L = f"{run.path('blocks')}.{index_label(members)}", len(members)
        for key, n_params in (
            (run.name("norm1"), 2 * D),
            (run.name("norm2"), 2 * D),
            ("attn", 2 * (2 * side - 1) * s.head_dim),
            ("attn.qkv", D * 3 * D + 3 * D),
            ("attn.proj", D * D + D),
            ("mlp.lin1", D * m + m),
            ("mlp.lin2", m * D + D),
        ):
            tb.add_weights(f"{nid}.{key}", L * n_params * a)
    for key, n_params in zip(
        _NECK, (out * D, 2 * out, out * out * 9, 2 * out, mid * out * 9, top * mid * 9), strict=True
    ):
        tb.add_weights(run.path(key), n_params * a)


def sam_params(s: SamConfig) -> int:
    """Parameter count of the encoder (model-facts §2.0 table: 95,569,152 for v1's SAM-B)."""
    D, m, out, (mid, top) = s.embed_dim, s.mlp_dim, s.out_chans, s.downsample_channels
    P = s.img_size // s.patch_size
    n_global = sum(1 for i in range(s.depth) if i in s.global_attn_indexes)
    block = 4 * D + D * 3 * D + 3 * D + D * D + D + D * m + m + m * D + D
    sam = P * P * D + D * s.in_chans * s.patch_size**2 + D + s.depth * block
    sam += 2 * s.head_dim * ((s.depth - n_global) * (2 * s.window_size - 1) + n_global * (2 * P - 1))  # rel-pos
    return sam + out * D + 4 * out + out * out * 9 + mid * out * 9 + top * mid * 9
