"""DeepSeek-OCR-2's analytic model: formula goldens (torch-free) and, with transformers >= 5.10.1, the whole tree
against the meta-device trace node by node.

Measured: every counter, calls, weight and KV bytes agree exactly on every node (single and dynamic modes, tiles,
batch 1-3, eager and flash, balanced and skewed routing, affine-fit and traced decode), so the trace test asserts
equality, which is stronger than the validation rule (matmul exact, the rest within 2 %).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from llm_perf_opt.analytic.formulas import ocr2 as f2
from llm_perf_opt.analytic.formulas import qwen2_vision as qv
from llm_perf_opt.analytic.ocr2 import ocr2_analytic_costs, ocr2_model_params
from llm_perf_opt.config import DeepseekOCR2Config, DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.workloads import RoutingModel
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

CFG = DeepseekOCR2Config(decoder=DeepseekOCRConfig.base())  # OCR-2's decoder is v1's, value for value


def test_parameter_total_is_the_published_size() -> None:
    sam = 95_569_152 - 3 * 3 * 512 * (1024 - 896)  # v1's SAM-B with proj.conv2 512 -> 896 instead of 1024
    layer = (896 * 896 + 896) + 2 * (896 * 128 + 128) + 896 * 896 + 3 * 896 * 4864 + 2 * 896
    encoder = 24 * layer + 896 + (144 + 256) * 896  # layers, final norm, the 768 and 1024 px query banks
    decoder = 129280 * 1280 * 2 + 2_603_776_000 + 1280  # embed + lm_head + 12 layers + norm
    projector = 896 * 1280 + 1280 + 1280  # linear with bias, view_separator
    assert ocr2_model_params(CFG) == sam + encoder + decoder + projector == 3_389_119_360


def test_block_mask_counts() -> None:
    # single 768 px view: 144 SAM tokens + 144 queries, batch 1 (the numbers the trace counts)
    B, L, T_s = 1, 288, 144
    eager = qv.block_mask(B=B, L=L, T_s=T_s, eager=True, a=2)
    # 2 offset adds, kv <= q, false | causal, ==, >= 0, and, causal | block, where
    assert eager.vector_flops == 2 * L + L * L + L * L + B * L * L + B * L + B * L * L + B * L * L + B * L * L
    # 5 aranges, full, scalar 0, copy_, 2 adds, new_zeros, le, or, 2 gathers, eq, ge, and, or; 2 scalars, where
    assert eager.kernels == 5 + 1 + 1 + 1 + 2 + 1 + 1 + 1 + 2 + 1 + 1 + 1 + 1 + 2 + 1
    flash = qv.block_mask(B=B, L=L, T_s=T_s, eager=False, a=2)
    assert eager.bytes_written - flash.bytes_written == 2 * 2 + B * L * L * 2  # scalar constants, bf16 mask
    # the batch-free parts do not grow with B: le and the first or stay L^2
    four = qv.block_mask(B=4, L=L, T_s=T_s, eager=False, a=2)
    assert four.vector_flops - flash.vector_flops == (4 - 1) * (3 * L * L + L)  # eq, and, or: B L^2; ge: B L


def test_encoder_attention_matmuls() -> None:
    B, L, H, c = 1, 288, 14, 64
    assert qv.gqa_attention_eager(B=B, L=L, H=H, c=c, a=2).matmul_flops == 2 * 2 * B * H * L * L * c == 297_271_296
    flash = qv.gqa_attention_flash(B=B, L=L, H=H, c=c, a=2)
    assert flash.matmul_flops == flash.matmul_flops_executed == 4 * B * H * L * L * c
    assert flash.bytes_read == 3 * B * H * L * c * 2 + B * L * L  # q, k, v (after repeat_kv) + the bool mask
    kv = qv.repeat_kv(B=B, L=L, H=H, H_kv=2, c=c, a=2)
    assert (kv.bytes_read, kv.bytes_written) == (2 * B * 2 * L * c * 2, 2 * B * H * L * c * 2)
    assert qv.repeat_kv(B=B, L=L, H=10, H_kv=10, c=128, a=2).kernels == 0
    # batch > 1: the eager core copies q first (one more kernel, B*L*H*c elements)
    two = qv.gqa_attention_eager(B=2, L=L, H=H, c=c, a=2)
    assert two.kernels == qv.gqa_attention_eager(B=1, L=L, H=H, c=c, a=2).kernels + 1


def test_rotary_table_reads_shared_positions_once() -> None:
    table = qv.rotary_table(N=288, c=64, a=2)
    # positions int64 -> fp32, inv_freq bf16 -> fp32, cos and sin fp32 -> bf16
    casts_read = 288 * 8 + 32 * 2 + 2 * 288 * 64 * 4
    products = (288 * 4 + 32 * 4) + 288 * 64 * 4 + 4 * 288 * 64 * 4  # outer product, cat, cos/sin/2 scalings
    assert table.bytes_read == casts_read + products
    shared = qv.rotary_table(N=2 * 155, c=128, a=2, unique=155)
    assert qv.rotary_table(N=2 * 155, c=128, a=2).bytes_read - shared.bytes_read == 155 * 8


def test_sam_rel_pos_and_projector() -> None:
    table = f2.rel_pos_table(s=14, rows=27, c=64, a=2)
    assert table.weight_bytes_read == 27 * 64 * 2  # interpolated in bf16 even at the right length
    assert table.kernels == 1 + 2 * 2 + 3 + 1  # interpolate, 2x (arange, scale), sub, add, cast, gather
    bias = f2.rel_pos_bias(Bw=16, h=12, s=14, c=64, a=2)
    assert bias.matmul_flops == 2 * 2 * 16 * 12 * 196 * 14 * 64
    assert bias.bytes_written == (16 * 12 * 196 * 64 + 2 * 16 * 12 * 196 * 14 + 2 * 16 * 12 * 196 * 196) * 2
    batched = f2.projector_batched(B=4, n=144, d_in=896, d=1280, a=2)
    assert batched.matmul_flops == 2 * 4 * 144 * 896 * 1280 == 1_321_205_760
    assert batched.weight_bytes_read == (896 * 1280 + 1280) * 2  # weight once (expanded), bias once


def test_counting_experts_dispatch_and_combine() -> None:
    T, d, k = 155, 1280, 6
    A = T * k
    dispatch = f2.expert_dispatch(T=T, d=d, k_top=k, a=2)
    assert dispatch.bytes_read == A * 8 + A * 8 + (A * d * 2 + A * 8) + (A * 4 + A * 8)  # sort, //, 2 gathers
    combine = f2.expert_combine(T=T, d=d, k_top=k, a=2)
    assert combine.vector_flops == A * d + T * d  # weighting, index_add_ (min(A, T) rows)


def test_tree_shape_and_totals() -> None:
    work = Ocr2Workload.create(mode="dynamic", page=(1024, 1024), max_new_tokens=4)
    tree = ocr2_analytic_costs(CFG, work, attention="flash")
    assert set(tree.children["root"]) == {"vision", "projector", "prefill", "decode"}
    assert "vision/model.vision_tower.vision_encoder.layers.{0..23}.self_attn" in tree
    assert "projector/model.language_model" not in tree  # flash prefill builds no mask
    assert "projector/model.language_model" in ocr2_analytic_costs(CFG, work, attention="eager")
    assert tree.calls["vision/model.vision_tower"] == 2  # global views, then the tiles
    assert tree.calls["decode/model.language_model.layers.{1..11}.mlp.experts"] == 11 * 3
    assert tree.weight_bytes["root"] == 3_389_119_360 * 2
    assert tree.kv_cache_bytes["decode"] == 12 * 2 * 10 * (work.seq_len + 3) * 128 * 2
    # matmul of the projector: global 256 queries (addmm), 4 tiles of 144 (batched)
    projector = tree["projector/model.multi_modal_projector"].cost
    assert projector.matmul_flops == 2 * (256 + 4 * 144) * 896 * 1280
    with pytest.raises(UserError, match="unknown attention kernel"):
        ocr2_analytic_costs(CFG, work, attention="paged")


NEW_TRANSFORMERS = importlib.util.find_spec("transformers") is not None and (
    importlib.util.find_spec("transformers.models.deepseek_ocr2") is not None
)
CASES = [
    # (mode, page, max_new_tokens, batch, attention, routing, decode)
    ("single", (1024, 1024), 3, 2, "eager", RoutingModel.balanced(), "every-step"),
    ("dynamic", (2480, 3508), 6, 1, "flash", RoutingModel.skewed(1.2), "auto"),
]


@pytest.mark.skipif(not NEW_TRANSFORMERS, reason="DeepSeek-OCR-2 needs transformers >= 5.10.1")
@pytest.mark.parametrize(("mode", "page", "n", "batch", "attention", "routing", "decode"), CASES)
def test_equals_the_trace_on_every_node(
    mode: str, page: tuple[int, int], n: int, batch: int, attention: str, routing: RoutingModel, decode: Any
) -> None:
    from llm_perf_opt.analysis.validation import validation_payload, validation_summary
    from llm_perf_opt.sources import resolve_model_source
    from llm_perf_opt.sources.deepseek_ocr2.config import analytic_config
    from llm_perf_opt.tracer.trace import trace_workload

    work = Ocr2Workload.create(mode=mode, page=page, max_new_tokens=n, batch_size=batch)
    trace = trace_workload(
        resolve_model_source("deepseek-ocr-2"), work, attention=attention, routing=routing, decode=decode
    )
    config = analytic_config()
    assert config.decoder.hidden_size == CFG.decoder.hidden_size and config.encoder == CFG.encoder
    tree = ocr2_analytic_costs(config, work, attention=attention, routing=routing)
    assert set(tree) == set(trace.nodes)
    problems = [
        f"{nid}: {field} traced {t} analytic {a}"
        for nid, node in trace.nodes.items()
        for field, t, a in (
            ("cost", node.cost, tree[nid].cost),
            ("calls", node.calls, tree.calls[nid]),
            ("weight_bytes", node.weight_bytes, tree.weight_bytes[nid]),
            ("kv_cache_bytes", node.kv_cache_bytes, tree.kv_cache_bytes[nid]),
        )
        if t != a
    ]
    assert problems == []
    assert validation_summary(validation_payload(trace.tree, tree))["status"] == "pass"
