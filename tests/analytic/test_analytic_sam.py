"""Hand-arithmetic goldens for the SAM formulas (model-facts §2.1, §3.7)."""

from __future__ import annotations

from llm_perf_opt.analytic.formulas import sam


def test_padded_grid_and_windows() -> None:
    assert sam.padded_grid(g=40, w=14) == 42  # 640 px crops: 3x3 windows
    assert sam.padded_grid(g=64, w=14) == 70  # 1024 px: 5x5 windows
    assert sam.padded_grid(g=28, w=14) == 28


def test_aa_taps() -> None:
    assert sam.aa_taps(n_in=64, n_out=40, taps_1d=4) == 7  # ceil(4 * 1.6)
    assert sam.aa_taps(n_in=64, n_out=80, taps_1d=4) == 4  # upscaling keeps the cubic support
    assert sam.aa_taps(n_in=16, n_out=8, taps_1d=4) == 8


def test_patch_conv_matches_facts() -> None:
    cost = sam.patch_conv(B=4, R=640, p=16, C_in=3, D=768, a=2)
    assert cost.matmul_flops == 2 * 4 * 40 * 40 * 768 * 768  # 2*B*g^2*768*768


def test_rel_pos_terms_matmul() -> None:
    # windowed block on 4 crops: 36 windows, 12 heads, 14x14 tokens, head 64
    cost = sam.rel_pos_terms(Bw=36, h=12, s=14, c=64, a=2)
    assert cost.matmul_flops == 4 * 36 * 12 * 196 * 14 * 64  # model-facts §3.7: 4*B*nw*12*t*14*64
    assert cost.vector_flops == 36 * 12 * 196 * 196  # the broadcast add into the bias
    assert cost.kernels == 1 + 2 + 2 + 1  # q copy, 2 einsums, 2 term copies, bias add


def test_rel_pos_terms_single_view_copies_q_twice() -> None:
    one = sam.rel_pos_terms(Bw=1, h=12, s=64, c=64, a=2)
    assert one.kernels == 2 + 2 + 2 + 1
    assert one.matmul_flops == 4 * 12 * 4096 * 64 * 64  # 4*B*12*g^2*g*64


def test_rel_pos_table_gather_reads_weights_without_interpolation() -> None:
    plain = sam.rel_pos_table(s=14, rows=27, c=64, a=2)
    assert plain.kernels == 8  # 2 arange, 2 scale, sub, add, cast, gather
    assert plain.weight_bytes_read == 14 * 14 * 64 * 2
    stretched = sam.rel_pos_table(s=40, rows=127, c=64, a=2)
    assert stretched.kernels == 8 + 3  # cast, upsample_linear1d, cast back
    assert stretched.weight_bytes_read == 127 * 64 * 2  # the table is read by the first cast only
    assert stretched.vector_flops == 2 * 2 * 79 * 64 + 2 * 40 + 2 * 40 * 40  # interp 2 taps + coords + offsets


def test_attention_core_flash_and_eager() -> None:
    flash = sam.attention_core(Bw=36, h=12, s=14, c=64, a=2, eager=False)
    assert flash.matmul_flops == 4 * 36 * 12 * 196 * 196 * 64  # model-facts §3.7: 4*B*nw*12*t^2*64
    assert flash.kernels == 2  # head split + fused SDPA
    eager = sam.attention_core(Bw=36, h=12, s=14, c=64, a=2, eager=True)
    assert eager.matmul_flops == flash.matmul_flops
    assert eager.kernels == 1 + 11 + 1  # head split, math SDPA with mask (11 ops), head merge
    single = sam.attention_core(Bw=1, h=12, s=64, c=64, a=2, eager=False)
    assert single.kernels == 1  # one view: the head split is a view


def test_window_copies() -> None:
    padded = sam.window_copies(B=1, g=40, w=14, D=768, a=2)
    assert padded.kernels == 4  # pad, partition copy, unpartition copy, crop copy
    assert padded.bytes_written == (42 * 42 + 42 * 42 * 2 + 40 * 40) * 768 * 2
    exact = sam.window_copies(B=1, g=28, w=14, D=768, a=2)
    assert exact.kernels == 2


def test_layer_norm2d() -> None:
    cost = sam.layer_norm2d(B=1, C=256, H=16, W=16, a=2)
    n, r = 256 * 16 * 16, 16 * 16
    assert cost.vector_flops == 8 * n + 4 * r
    assert cost.kernels == 10
    assert cost.weight_bytes_read == 2 * 256 * 2


def test_abs_pos() -> None:
    assert sam.abs_pos_resize(g=64, P=64, D=768, a=2).kernels == 0
    resize = sam.abs_pos_resize(g=40, P=64, D=768, a=2)
    assert resize.vector_flops == 2 * 49 * 40 * 40 * 768  # 2 FLOPs per tap, 7x7 taps
    add = sam.abs_pos_add(B=4, g=40, P=64, D=768, a=2)
    assert add.vector_flops == 4 * 40 * 40 * 768
    assert add.weight_bytes_read == 0  # the resized table is an activation
    assert sam.abs_pos_add(B=1, g=64, P=64, D=768, a=2).weight_bytes_read == 64 * 64 * 768 * 2
