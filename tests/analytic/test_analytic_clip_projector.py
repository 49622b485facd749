"""Hand-arithmetic goldens for the CLIP and projector formulas (model-facts §2.2-§2.3, §3.7)."""

from __future__ import annotations

from llm_perf_opt.analytic.formulas import clip, projector
from llm_perf_opt.core import Cost


def test_clip_layer_matmul_matches_facts() -> None:
    # 4 crops of 101 tokens: model-facts §3.7 row "CLIP on 4x101 tokens" = 248.019 GFLOP over 24 layers
    B, L = 4, 101
    linears = Cost.total(clip.layer_linears(B=B, L=L, D=1024, F=4096, a=2).values())
    core = Cost.total(clip.attention_core(B=B, L=L, H=16, c=64, a=2, eager=False).values())
    per_layer = 2 * B * L * (1024 * 3072 + 1024 * 1024 + 2 * 1024 * 4096) + 4 * B * 16 * L * L * 64
    assert linears.matmul_flops + core.matmul_flops == per_layer
    assert 24 * per_layer == 248_019_025_920  # 248.019 GFLOP


def test_clip_attention_core_eager_copies_only_for_batches() -> None:
    one = clip.attention_core(B=1, L=257, H=16, c=64, a=2, eager=True)
    four = clip.attention_core(B=4, L=101, H=16, c=64, a=2, eager=True)
    assert one["data_movement"].kernels == 5 + 1  # casts + head merge
    assert four["data_movement"].kernels == 5 + 3 + 1  # + Q, K^T, V copies


def test_quick_gelu() -> None:
    parts = clip.quick_gelu(N=101, F=4096, a=2)
    n = 101 * 4096
    assert parts["elementwise"].vector_flops == 2 * n  # 1.702*x and the product
    assert parts["activation"].vector_flops == 4 * n  # sigmoid


def test_embeddings_resize_only_when_the_grid_differs() -> None:
    same = clip.embeddings_own(B=1, t=16, P=16, D=1024, a=2)
    assert same.kernels == 2  # CLS concat, position add
    resized = clip.embeddings_own(B=4, t=10, P=16, D=1024, a=2)
    assert resized.kernels == 2 + 5  # copy, cast, bicubic, cast back, CLS-row concat
    assert resized.vector_flops == 4 * 101 * 1024 + 2 * 49 * 100 * 1024  # add + 7x7-tap resize


def test_projector_matches_facts() -> None:
    cost = projector.projector_linear(B=4, n=100, d_in=2048, d=1280, a=2) + projector.projector_linear(
        B=1, n=256, d_in=2048, d=1280, a=2
    )
    assert cost.matmul_flops == 2 * 656 * 2048 * 1280  # model-facts §3.7: 3.439 GFLOP
    assert cost.matmul_flops == 3_439_329_280


def test_view_tokens_write_every_image_token() -> None:
    crops = projector.view_tokens(i=2, j=2, t_c=10, t_g=16, d=1280, a=2)
    final_rows = 693  # 420 local + 272 global + 1 separator (model-facts §3.6)
    assert crops.kernels == 4  # re-tile copy, local newlines, global newlines, final concat
    assert crops.bytes_written == (400 + 420 + 272 + final_rows) * 1280 * 2
    plain = projector.view_tokens(i=1, j=1, t_c=0, t_g=16, d=1280, a=2)
    assert plain.bytes_written == (272 + 273) * 1280 * 2
    assert projector.view_tokens(i=1, j=3, t_c=10, t_g=16, d=1280, a=2).kernels == 3  # one column: no re-tile copy


def test_injection() -> None:
    cost = projector.injection(N_img=693, S=703, d=1280, a=2)
    assert cost.bytes_written == 2 * 693 * 1280 * 2
    assert cost.bytes_read == 693 * 1280 * 2 + 703 + 693 * 1280 * 2  # copy + mask + rows
