"""The divergence table is well formed; the fused-kernel convention's arithmetic."""

from __future__ import annotations

from llm_perf_opt.analytic.divergences import DIVERGENCES, VALIDATED_FIELDS, divergence_for
from llm_perf_opt.analytic.formulas import fused


def test_divergence_rows_are_complete() -> None:
    ids = [row.id for row in DIVERGENCES]
    assert len(ids) == len(set(ids))
    for row in DIVERGENCES:
        assert row.reason and row.measured_on and row.expected_ratio > 0
        assert row.ratio_range is None or row.ratio_range[0] <= row.expected_ratio <= row.ratio_range[1]
        assert set(row.as_dict()) >= {"id", "pattern", "metric", "reason", "expected_ratio", "ratio_range"}


def test_no_row_excuses_matmul_flops() -> None:
    assert VALIDATED_FIELDS[0] == "matmul_flops"
    assert all(row.metric != "matmul_flops" for row in DIVERGENCES)
    assert divergence_for("root", "matmul_flops") is None


def test_fused_linear_and_attention() -> None:
    lin = fused.linear_layer(N=703, d_in=1280, d_out=129280, bias=False, a=2, out_bytes=4)
    assert lin.nbytes == 1280 * 129280 * 2 + 703 * 1280 * 2 + 703 * 129280 * 4  # weights + in + fp32 logits
    assert lin.live == 703 * 1280 * 2 + 703 * 129280 * 4
    core = fused.decoder_attention_layer(B=1, q=1, k=704, H=10, Hkv=10, c=128, a=2, eager=False)
    assert core.nbytes == 1280 * 2 + 2 * 10 * 704 * 128 * 2 + 3 * 1280 * 2  # q + K/V cache in; out + new K/V
    eager = fused.decoder_attention_layer(B=1, q=1, k=704, H=10, Hkv=10, c=128, a=2, eager=True)
    assert eager.nbytes == core.nbytes and eager.live == core.live + 10 * 704 * (4 + 4 + 2)  # scores held
    sam = fused.attention_layer(BH=12, q=4096, k=4096, d=64, a=2, eager=False, masked=True)
    assert sam.live - sam.nbytes == 12 * 4096 * 4096 * 2  # the materialised rel-pos mask (402,653,184 B)
    assert fused.elementwise_layer(n=10, operands=2, a=2).nbytes == 3 * 10 * 2
