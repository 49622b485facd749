"""The built-in DeepSeek-OCR v1 traced on meta: model-facts §3.7 exactly, torch's FlopCounterMode, full op coverage."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.sources.deepseek_ocr_v1.driver import BuiltinDriver
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.engine import TraceOptions, trace_model
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.tracer.trace import DEEPSEEK_OCR_STAGES, trace_workload
from llm_perf_opt.workloads import PRESETS, RoutingModel, Workload, preset_workload

pytestmark = pytest.mark.slow

PREFILL_STAGES = ("vision", "projector", "prefill")

# -- closed forms of model-facts §3.7 (an independent derivation: 2 FLOPs per MAC, matmul/conv/attention only) --------


def sam_flops(B: int, R: int) -> int:
    g = R // 16
    gp = 14 * -(-g // 14)
    nw = (gp // 14) ** 2
    t = 196
    mlp = 2 * B * g * g * 2 * 768 * 3072
    windowed = 2 * B * gp * gp * (768 * 2304 + 768 * 768) + 4 * B * nw * 12 * t * 14 * 64 + 4 * B * nw * 12 * t * t * 64
    global_ = 2 * B * g * g * (768 * 2304 + 768 * 768) + 4 * B * 12 * g * g * g * 64 + 4 * B * 12 * g**4 * 64
    patch = 2 * B * g * g * 768 * 768
    neck = 2 * B * g * g * (768 * 256 + 9 * 256 * 256)
    net_2 = 2 * B * (g // 2) ** 2 * 9 * 256 * 512
    net_3 = 2 * B * (g // 4) ** 2 * 9 * 512 * 1024
    return patch + 8 * (windowed + mlp) + 4 * (global_ + mlp) + neck + net_2 + net_3


def clip_flops(B: int, R: int) -> int:
    L = 1 + (R // 64) ** 2
    return 24 * (2 * B * L * (1024 * 3072 + 1024 * 1024 + 2 * 1024 * 4096) + 4 * B * 16 * L * L * 64)


def decoder_flops(q: int, k: int) -> int:
    """12 layers (layer 0 dense, 1-11 MoE) incl. the rotary matmul 2*64*q per layer, plus lm_head."""
    attention = 2 * q * 4 * 1280 * 1280 + 4 * 10 * q * k * 128 + 2 * 64 * q
    dense = 2 * q * 3 * 1280 * 6848
    moe = 2 * q * (1280 * 64 + 3 * 1280 * 1792 + 6 * 3 * 1280 * 896)
    lm_head = 2 * q * 1280 * 129280
    return 12 * attention + dense + 11 * moe + lm_head


def prefill_matmul(result: TraceResult) -> int:
    return sum(result.node(s).cost.matmul_flops for s in PREFILL_STAGES)


@pytest.fixture(scope="module")
def standard() -> TraceResult:
    return trace_workload(resolve_model_source("deepseek-ocr-v1-base"), "dsocr-standard-v1")


@pytest.fixture(scope="module")
def base_1024() -> Workload:
    return Workload.create(mode="base", page=(1024, 1024), max_new_tokens=2)


def test_gundam_prefill_matmul_flops_match_facts(standard: TraceResult) -> None:
    S = 703
    closed = (
        (sam_flops(4, 640) + sam_flops(1, 1024) + clip_flops(4, 640) + clip_flops(1, 1024))
        + 2 * 656 * 2048 * 1280
        + decoder_flops(S, S)
    )
    assert prefill_matmul(standard) == closed
    assert round(closed / 1e9, 3) == 3530.110  # model-facts §3.7, Gundam 2x2 total prefill incl. lm_head
    assert standard.node("prefill/lm_head").cost.matmul_flops == 2 * 703 * 1280 * 129280


def test_gundam_decode_integrates_facts_step(standard: TraceResult) -> None:
    step_704 = decoder_flops(1, 704)
    assert round(step_704 / 1e6, 3) == 1191.446  # model-facts §3.7: decode step at 704 keys
    # step i attends over 703 + i keys; 511 steps
    assert standard.node("decode").cost.matmul_flops == sum(decoder_flops(1, 703 + i) for i in range(1, 512))
    assert standard.decode_method == "affine-fit"
    assert standard.node("decode").repetition == "for"
    assert standard.node("decode").repetition_count == 511


def test_base_1024_prefill_and_step(base_1024: Workload) -> None:
    result = trace_workload(resolve_model_source("deepseek-ocr-v1-base"), base_1024)
    closed = sam_flops(1, 1024) + clip_flops(1, 1024) + 2 * 256 * 2048 * 1280 + decoder_flops(283, 283)
    assert prefill_matmul(result) == closed
    assert round(closed / 1e9, 3) == 1469.826  # model-facts §3.7, Base 1024
    assert result.node("decode").cost.matmul_flops == decoder_flops(1, 284)
    assert round(decoder_flops(1, 284) / 1e6, 3) == 1165.641


def test_flash_executes_causal_half(standard: TraceResult) -> None:
    pre = standard.node("prefill").cost
    saved = 12 * 4 * 10 * 128 * (703 * 703 - 703 * 704 // 2)  # causal entries skipped in 12 layers
    assert pre.matmul_flops - pre.matmul_flops_executed == saved
    vision = standard.node("vision").cost
    assert vision.matmul_flops == vision.matmul_flops_executed  # SAM/CLIP attention is not causal


def test_flop_counter_mode_agrees(base_1024: Workload) -> None:
    """torch's FlopCounterMode on meta (eager build) vs our dense counts, in total and per module."""
    source = resolve_model_source("deepseek-ocr-v1-base")
    model = source.build(attn_implementation="eager")
    inputs = source.make_inputs(base_1024)
    cache = model.new_cache(batch_size=1, max_len=inputs.cache_len + 1)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(**inputs.prefill.kwargs(), past_key_values=cache, routing=RoutingModel.balanced())
    ours = trace_workload(source, base_1024, attention="eager", model=model)
    assert counter.get_total_flops() == prefill_matmul(ours)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    for node_id in (
        "vision/model.sam_model",
        "vision/model.vision_model",
        "projector/model.projector",
        "prefill/model.layers.0",
        "prefill/lm_head",
    ):
        path = node_id.split("/", 1)[1]
        assert sum(per_module[f"{root}.{path}"].values()) == ours.node(node_id).cost.matmul_flops, node_id
    moe_layers = sum(sum(per_module[f"{root}.model.layers.{i}"].values()) for i in range(1, 12))
    assert moe_layers == ours.node("prefill/model.layers.{1..11}").cost.matmul_flops  # a group sums its members


class _Recorder(TorchDispatchMode):
    """Lists every aten op that runs (an independent view of what the counter must account for)."""

    def __init__(self, seen: set[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.seen.add(str(func))
        return func(*args, **(kwargs or {}))


class _RecordingDriver(BuiltinDriver):
    seen: set[str]

    def _wrap(self, inputs: PassInputs) -> PassInputs:
        seen = self.seen

        def run() -> Any:
            with _Recorder(seen):
                return inputs.run()

        return attrs.evolve(inputs, run=run)

    def prefill(self) -> PassInputs:
        return self._wrap(super().prefill())

    def step(self, i: int) -> PassInputs:
        return self._wrap(super().step(i))


def _recorded_standard_trace() -> tuple[TraceResult, set[str]]:
    source = resolve_model_source("deepseek-ocr-v1-base")
    model = source.build(attn_implementation="sdpa")
    work = preset_workload("dsocr-standard-v1")
    driver = _RecordingDriver(model, source.make_inputs(work), RoutingModel.balanced())
    driver.seen = set()
    result = trace_model(
        model,
        driver,
        TraceOptions(
            rules=DEEPSEEK_OCR_STAGES,
            attention="flash",
            routing="balanced",
            model_desc="base",
            workload_desc=work.describe(),
            seq_len=work.seq_len,
            max_new_tokens=work.max_new_tokens,
        ),
    )[0]
    return result, driver.seen


def test_every_op_of_the_standard_workload_has_a_bucket() -> None:
    result, seen = _recorded_standard_trace()
    assert seen, "the recorder saw no op"
    missing = sorted(op for op in seen if op not in result.op_ledger)
    assert missing == []
    assert result.unsupported == ()
    for entry in result.op_ledger.values():
        assert entry.bucket in ("counted", "zero-cost"), entry
        assert entry.rule and entry.reason, entry
        assert entry.count > 0
    assert result.op_ledger["F.scaled_dot_product_attention"].bucket == "counted"


def test_memory_numbers(standard: TraceResult) -> None:
    assert standard.root.weight_bytes == 6_672_212_480  # model-facts §2: 2 B x 3,336,106,240 params
    assert standard.node("prefill").kv_cache_bytes == 61_440 * 703  # 12 x 2 x 10 x 128 x 2 B per token
    assert standard.node("decode").kv_cache_bytes == 61_440 * (703 + 511)
    assert standard.node("decode/model.layers.0").kv_cache_bytes == 5_120 * (703 + 511)
    assert standard.root.kv_cache_bytes == 61_440 * 1214
    # the SAM global-attention rel-pos bias [1, 12, 4096, 4096] bf16 is live in the vision peak
    assert standard.node("vision").peak_activation_bytes > 12 * 4096 * 4096 * 2
    assert standard.root.peak_activation_bytes == max(
        standard.node(s).peak_activation_bytes for s in standard.root.children
    )


def test_tree_shape(standard: TraceResult) -> None:
    nodes = standard.nodes
    assert standard.root.children == ("vision", "projector", "prefill", "decode")
    sam = nodes["vision/model.sam_model.blocks.{0,1,3,4,6,7,9,10}"]
    assert (sam.repetition, sam.repetition_count, sam.calls) == ("for", 8, 16)  # crops call + global call
    assert nodes["vision/model.sam_model.blocks.{2,5,8,11}"].repetition_count == 4
    assert nodes["vision/model.vision_model.transformer.layers.{0..23}"].repetition_count == 24
    assert nodes["prefill/model.layers.0"].repetition == "none"
    layers = nodes["prefill/model.layers.{1..11}"]
    assert (layers.repetition, layers.repetition_count) == ("for", 11)
    experts = nodes["prefill/model.layers.{1..11}.mlp.experts.{0..63}"]
    assert (experts.repetition, experts.repetition_count) == ("parfor", 64)
    assert experts.calls == 11 * 64  # balanced routing: 703*6 assignments reach every expert
    assert "decode/model.layers.{1..11}.mlp.experts.{0..63}.down_proj" in nodes
    assert nodes["decode/model.layers.{1..11}.mlp.experts.{0..63}"].calls == 11 * 6 * 511  # top-6 per step
    assert nodes["prefill/model.layers.0.self_attn"].qualified_class_name.endswith("LlamaAttention")
    assert nodes["prefill/model.layers.0.self_attn"].constructor_params["num_heads"] == 10
    assert "transformers_modules" not in "".join(n.qualified_class_name for n in nodes.values())
    assert standard.uncalled_modules == ("model.vision_model.embeddings.patch_embedding",)
    for node in nodes.values():  # parents before children, children point back
        for child in node.children:
            assert nodes[child].parent_id == node.module_id


def _named_share(result: TraceResult) -> float:
    flops = result.category_flops()
    return 1 - flops.get("other", 0) / sum(flops.values())


def test_categories_cover_the_flops(standard: TraceResult) -> None:
    assert _named_share(standard) >= 0.9
    assert standard.other_flops_share() == 0.0
    cats = standard.root.by_category
    assert cats["linear"].matmul_flops > cats["attention"].matmul_flops > cats["conv2d"].matmul_flops > 0
    assert cats["moe_routing"].kernels > 0 and cats["norm"].vector_flops > 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_categories_on_every_preset_tiny(preset: str) -> None:
    work = attrs.evolve(preset_workload(preset), max_new_tokens=min(preset_workload(preset).max_new_tokens, 8))
    result = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), work)
    assert _named_share(result) >= 0.9
    assert result.unsupported == ()


def test_routing_changes_weight_reads_not_flops() -> None:
    tiny_work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=2)
    balanced = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), tiny_work)
    skewed = trace_workload(resolve_model_source("deepseek-ocr-v1-tiny"), tiny_work, routing=RoutingModel.skewed(8.0))
    assert skewed.routing == "skewed(alpha=8)"
    for stage in ("prefill", "decode"):
        assert balanced.node(stage).cost.matmul_flops == skewed.node(stage).cost.matmul_flops
    assert skewed.node("prefill").cost.weight_bytes_read < balanced.node("prefill").cost.weight_bytes_read
