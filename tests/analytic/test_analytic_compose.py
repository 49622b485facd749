"""``analytic_costs`` against docs/model-facts.md (§2, §3.4, §3.7), the module-id scheme, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.analytic import AnalyticTree, analytic_costs, model_params, model_weight_bytes
from llm_perf_opt.analytic.ocr2 import ocr2_analytic_costs
from llm_perf_opt.analytic.tree import components, parent_id
from llm_perf_opt.config import DeepseekOCR2Config, DeepseekOCRConfig
from llm_perf_opt.core.counts import COST_FIELDS
from llm_perf_opt.errors import UserError
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

BASE = DeepseekOCRConfig.base()
TINY = DeepseekOCRConfig.tiny()
GUNDAM = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=1)  # 2x2 crops, S = 703
BASE_MODE = Workload.create(mode="base", page=(1024, 1024), max_new_tokens=1)  # S = 283
SAM = "vision/model.sam_model"
CLIP = "vision/model.vision_model"


def sam_closed_form(B: int, R: int) -> int:
    """model-facts §3.7 closed form: SAM on ``B`` views of side ``R`` (8 windowed + 4 global blocks, neck, net_2/3)."""
    g = R // 16
    gp = 14 * -(-g // 14)
    nw, t = (gp // 14) ** 2, 196
    mlp = 2 * B * g * g * 2 * 768 * 3072
    win = 2 * B * gp * gp * (768 * 2304 + 768**2) + 4 * B * nw * 12 * t * 14 * 64 + 4 * B * nw * 12 * t * t * 64 + mlp
    glob = 2 * B * g * g * (768 * 2304 + 768**2) + 4 * B * 12 * g**3 * 64 + 4 * B * 12 * g**4 * 64 + mlp
    neck = 2 * B * g * g * (768 * 256 + 9 * 256 * 256)
    nets = 2 * B * (g // 2) ** 2 * 9 * 256 * 512 + 2 * B * (g // 4) ** 2 * 9 * 512 * 1024
    return 2 * B * g * g * 768 * 768 + 8 * win + 4 * glob + neck + nets


def clip_closed_form(B: int, R: int) -> int:
    """model-facts §3.7: ``24*[2*B*L*(1024*3072 + 1024^2 + 2*1024*4096) + 4*B*16*L^2*64]`` with ``L = 1 + (R/64)^2``."""
    L = 1 + (R // 64) ** 2
    return 24 * (2 * B * L * (1024 * 3072 + 1024**2 + 2 * 1024 * 4096) + 4 * B * 16 * L * L * 64)


def decoder_closed_form(q: int, k: int) -> int:
    """model-facts §3.7: per layer attention ``2q*4*1280^2 + 4*10*q*k*128`` (+ rotary ``2*64*q``), dense MLP
    ``2q*3*1280*6848`` in layer 0, MoE ``2q*(1280*64 + 3*1280*1792 + 6*3*1280*896)`` in layers 1-11."""
    attention = 2 * q * 4 * 1280**2 + 4 * 10 * q * k * 128 + 2 * 64 * q
    moe = 2 * q * (1280 * 64 + 3 * 1280 * 1792 + 6 * 3 * 1280 * 896)
    return 12 * attention + 2 * q * 3 * 1280 * 6848 + 11 * moe


def _mm(tree: AnalyticTree, node: str) -> int:
    return tree[node].cost.matmul_flops


def test_gundam_prefill_matches_facts_table() -> None:
    tree = analytic_costs(BASE, GUNDAM)
    assert GUNDAM.seq_len == 703
    assert sam_closed_form(4, 640) == 1_302_483_173_376  # facts: SAM on 4 crops @640, 1302.483 GFLOP
    assert sam_closed_form(1, 1024) == 976_909_172_736  # facts: SAM on the global view @1024, 976.909 GFLOP
    assert _mm(tree, SAM) == 1_302_483_173_376 + 976_909_172_736
    assert clip_closed_form(4, 640) == 248_019_025_920  # 248.019 GFLOP
    assert clip_closed_form(1, 1024) == 161_715_683_328  # 161.716 GFLOP
    assert _mm(tree, CLIP) == 248_019_025_920 + 161_715_683_328
    assert _mm(tree, "projector") == 2 * 656 * 2048 * 1280  # 3.439 GFLOP
    assert decoder_closed_form(703, 703) == 604_880_726_528  # facts: decoder, 12 layers, 604.881 GFLOP
    assert _mm(tree, "prefill/model.layers") == 604_880_726_528
    assert _mm(tree, "prefill/model.layers.0") == 48_717_427_584
    assert _mm(tree, "prefill/model.layers.{1..11}") == 11 * 50_560_299_904
    assert _mm(tree, "prefill/lm_head") == 2 * 703 * 1280 * 129280  # 232.663 GFLOP
    total = sum(_mm(tree, stage) for stage in ("vision", "projector", "prefill"))
    assert total == 3_530_109_741_568  # facts: 3530.110 GFLOP
    assert "decode" not in tree  # max_new_tokens = 1: no decode step


def test_base_prefill_matches_facts() -> None:
    tree = analytic_costs(BASE, BASE_MODE)
    assert BASE_MODE.seq_len == 283
    assert _mm(tree, SAM) == 976_909_172_736
    assert decoder_closed_form(283, 283) == 236_198_302_208  # facts: 236.198 GFLOP
    assert _mm(tree, "prefill/model.layers") == 236_198_302_208
    assert _mm(tree, "root") == 1_469_826_109_952  # facts: 1469.826 GFLOP
    step = analytic_costs(BASE, Workload.create(mode="base", page=(1024, 1024), max_new_tokens=2))
    assert decoder_closed_form(1, 284) == 834_684_416  # facts: 834.684 MFLOP at 284 keys
    assert _mm(step, "decode") == 834_684_416 + 2 * 1280 * 129280  # + lm_head = 1165.641 MFLOP


def test_decode_totals_are_closed_form_sums() -> None:
    # N = 2: one decode step at 704 keys = 1191.446 MFLOP (model-facts §3.7)
    one = analytic_costs(BASE, Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=2))
    assert _mm(one, "decode") == 1_191_446_016
    # N = 4: steps at 704, 705, 706 keys; only attention grows, by 4*10*128*12 FLOPs per key
    three = analytic_costs(BASE, Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=4))
    assert _mm(three, "decode") == 3 * 1_191_446_016 + (0 + 1 + 2) * 4 * 10 * 128 * 12
    assert three.calls["decode"] == 3
    assert three.calls["decode/model.layers.{1..11}.self_attn"] == 3 * 11


def test_weights_are_exact() -> None:
    assert model_params(BASE) == 3_336_106_240
    assert model_weight_bytes(BASE) == 6_672_212_480
    tree = analytic_costs(BASE, GUNDAM)
    assert tree.weight_bytes["root"] == 6_672_212_480
    assert tree.weight_bytes["prefill/model.layers.0"] == 32_852_480 * 2  # model-facts §2.4
    assert tree.weight_bytes["prefill/model.layers.{1..11}"] == 11 * 233_720_320 * 2
    assert tree.weight_bytes[SAM] == 95_569_152 * 2
    unused_patch_conv = 3 * 1024 * 14 * 14  # CLIP's patch conv never runs, so no node holds it
    assert tree.weight_bytes[CLIP] == (303_177_728 - unused_patch_conv) * 2


def test_kv_cache_counted_once() -> None:
    S, N = 703, 512
    tree = analytic_costs(BASE, Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=N))
    assert tree.kv_cache_bytes["prefill"] == 61_440 * S  # 43,192,320 B after the prefill
    assert tree.kv_cache_bytes["decode"] == 61_440 * (S + N - 1)  # the cache at the end, not prefill + decode
    assert tree.kv_cache_bytes["root"] == tree.kv_cache_bytes["decode"]
    appended = tree["prefill"].cost.kv_bytes_written + tree["decode"].cost.kv_bytes_written
    assert appended == 61_440 * (S + N - 1)  # every cached token written exactly once


def test_module_ids_follow_the_tracer_scheme() -> None:
    tree = analytic_costs(BASE, Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=3))
    for node in (
        "root",
        "vision",
        f"{SAM}.blocks.{{0,1,3,4,6,7,9,10}}.attn.qkv",
        f"{SAM}.blocks.{{2,5,8,11}}.mlp.act",
        f"{CLIP}.transformer.layers.{{0..23}}.self_attn.qkv_proj",
        "projector/model.projector.layers",
        "prefill/model.layers.0.mlp.down_proj",
        "prefill/model.layers.{1..11}.mlp.experts.{0..63}.down_proj",
        "decode/model.layers.{1..11}.mlp.shared_experts.act_fn",
        "decode/lm_head",
    ):
        assert node in tree, node
    assert tree.children["root"] == ("decode", "prefill", "projector", "vision")
    for node in tree:
        parent = parent_id(node)
        assert parent is None or node in tree.children[parent]


def test_no_crop_page_has_no_crop_encoder_work() -> None:
    small_page = Workload.create(mode="gundam", page=(600, 500), max_new_tokens=1)
    assert small_page.num_crops == 0 and small_page.seq_len == 1 + 273 + 9
    tree = analytic_costs(BASE, small_page)
    assert _mm(tree, SAM) == 976_909_172_736  # the global view only
    assert tree.calls[SAM] == 1


def test_components_split_outside_braces() -> None:
    assert components("model.layers.{1..11}.mlp") == ("model", "layers", "{1..11}", "mlp")
    assert components("model.blocks.{0,1,3}.attn") == ("model", "blocks", "{0,1,3}", "attn")
    assert parent_id("prefill/model") == "prefill" and parent_id("prefill") == "root"


def test_by_category_sums_to_the_node() -> None:
    tree = analytic_costs(BASE, GUNDAM, attention="eager")
    for node in ("root", "vision", f"{SAM}.blocks.{{2,5,8,11}}.attn", "prefill/model.layers.{1..11}.mlp"):
        cats = tree.by_category(node)
        for name in COST_FIELDS:
            assert sum(getattr(c, name) for c in cats.values()) == getattr(tree[node].cost, name)
    assert set(tree.by_category("prefill/model.layers.{1..11}.mlp.gate")) == {"moe_routing"}


def test_unknown_attention_is_rejected() -> None:
    with pytest.raises(UserError, match="expected one of: flash, eager"):
        analytic_costs(BASE, GUNDAM, attention="sdpa")


def test_one_front_door_for_both_families() -> None:
    ocr2 = DeepseekOCR2Config(decoder=BASE)
    page = Ocr2Workload.create(max_new_tokens=3)
    assert analytic_costs(ocr2, page) is ocr2_analytic_costs(ocr2, page)  # one cached tree, either name
    assert "vision/model.vision_tower.sam_encoder" in analytic_costs(ocr2, page)
    with pytest.raises(UserError, match="DeepSeek-OCR-2 model needs a DeepSeek-OCR-2 workload"):
        analytic_costs(ocr2, GUNDAM)
    with pytest.raises(UserError, match="v1 model needs a v1 workload"):
        analytic_costs(BASE, page)


def test_routing_changes_only_which_experts_run() -> None:
    w = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=4)
    balanced = analytic_costs(BASE, w)
    skewed = analytic_costs(BASE, w, routing=RoutingModel.skewed(8.0))
    experts = "prefill/model.layers.{1..11}.mlp.experts.{0..63}"
    assert balanced[experts].cost.matmul_flops == skewed[experts].cost.matmul_flops  # always T*k expert rows
    assert balanced.calls[experts] == 11 * 64
    assert skewed.calls[experts] < balanced.calls[experts]  # skew leaves some experts without tokens
    assert skewed[experts].cost.weight_bytes_read < balanced[experts].cost.weight_bytes_read
    assert balanced.calls["decode/model.layers.{1..11}.mlp.experts.{0..63}"] == 3 * 11 * 6  # k experts per step


def test_fused_bytes_below_eager_bytes() -> None:
    tree = analytic_costs(BASE, Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=8))
    for stage in ("vision", "projector", "prefill", "decode"):
        assert 0 < tree.fused_bytes[stage] < tree[stage].cost.total_bytes
    # a Linear is one fused layer either way
    assert (
        tree.fused_bytes["prefill/model.layers.0.mlp.down_proj"]
        == tree["prefill/model.layers.0.mlp.down_proj"].cost.total_bytes
    )
    assert tree.peak_activation_bytes["prefill"] >= 703 * 129280 * (2 + 4)  # bf16 + fp32 logits


pages = st.sampled_from(
    [("tiny", (800, 800)), ("base", (900, 700)), ("gundam", (1024, 1024)), ("gundam", (3000, 1000))]
)


@settings(max_examples=15, deadline=None)
@given(
    pages,
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=40),
    st.sampled_from(["flash", "eager"]),
)
def test_linear_in_batch(page: tuple[str, tuple[int, int]], B: int, N: int, attention: str) -> None:
    mode, size = page
    one = analytic_costs(
        TINY, Workload.create(mode=mode, page=size, max_new_tokens=N, config=TINY), attention=attention
    )
    many = analytic_costs(
        TINY, Workload.create(mode=mode, page=size, max_new_tokens=N, batch_size=B, config=TINY), attention=attention
    )
    for node in ("vision", "projector/model.projector", "prefill/model.layers", "prefill/lm_head"):
        assert many[node].cost.matmul_flops == B * one[node].cost.matmul_flops
    if N > 1:
        assert many["decode/model.layers.0"].cost.matmul_flops == B * one["decode/model.layers.0"].cost.matmul_flops
    assert many.kv_cache_bytes["root"] == B * one.kv_cache_bytes["root"]


@settings(max_examples=15, deadline=None)
@given(
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=1, max_value=300),
    st.sampled_from(["flash", "eager"]),
)
def test_non_decreasing_in_sequence_length(extra: int, N: int, attention: str) -> None:
    short = analytic_costs(
        TINY,
        Workload.create(mode="base", page=(800, 800), prompt_tokens=9, max_new_tokens=N, config=TINY),
        attention=attention,
    )
    longer = analytic_costs(
        TINY,
        Workload.create(mode="base", page=(800, 800), prompt_tokens=9 + extra, max_new_tokens=N, config=TINY),
        attention=attention,
    )
    for node in ("prefill", "root"):
        for name in COST_FIELDS:
            assert getattr(longer[node].cost, name) >= getattr(short[node].cost, name), (node, name)
    more_tokens = analytic_costs(
        TINY, Workload.create(mode="base", page=(800, 800), max_new_tokens=N + extra, config=TINY), attention=attention
    )
    plain = analytic_costs(
        TINY, Workload.create(mode="base", page=(800, 800), max_new_tokens=N, config=TINY), attention=attention
    )
    assert more_tokens["root"].cost.total_flops >= plain["root"].cost.total_flops
