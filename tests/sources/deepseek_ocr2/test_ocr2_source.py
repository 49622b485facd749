"""DeepSeek-OCR-2 through transformers' deepseek_ocr2 model: published config, meta build, counting experts, trace."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from llm_perf_opt.errors import UserError
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.sources.deepseek_ocr2 import config as ocr2_config
from llm_perf_opt.sources.deepseek_ocr2.config import ocr2_config_kwargs, published_config, source_facts
from llm_perf_opt.sources.deepseek_ocr2.modes import Ocr2Workload
from llm_perf_opt.sources.deepseek_ocr2.source import Ocr2ModelSource, deepseek_ocr2_source, to_ocr2_workload
from llm_perf_opt.sources.upstream.compat import installed_transformers, version_tuple
from llm_perf_opt.tracer import replay
from llm_perf_opt.tracer.trace import trace_with_basis, trace_with_driver
from llm_perf_opt.workloads import RoutingModel, Workload

NEW_ENOUGH = version_tuple(installed_transformers() or "0") >= ocr2_config.MIN_TRANSFORMERS
needs_transformers = pytest.mark.skipif(not NEW_ENOUGH, reason="needs transformers >= 5.10.1")


def test_published_config_is_shipped_with_its_source() -> None:
    raw = published_config()
    facts = source_facts()
    assert raw["_name_or_path"] == "deepseek-ai/DeepSeek-OCR-2"
    assert raw["auto_map"]["AutoModel"] == "modeling_deepseekocr2.DeepseekOCR2ForCausalLM"
    assert facts["config_json"]["sha256"] == "e2bb23b49b445f0bfd6eeb978bac9f19a2df82cb38472754e4ae83662d18f845"
    kwargs = ocr2_config_kwargs()
    assert kwargs["text_config"]["mlp_layer_types"] == ["dense"] + ["sparse"] * 11  # first_k_dense_replace = 1
    assert (
        kwargs["vision_config"]["encoder_config"]["hidden_size"] == raw["vision_config"]["width"]["qwen2-0-5b"]["dim"]
    )


def test_too_old_transformers_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr2_config, "installed_transformers", lambda: "4.46.3")
    with pytest.raises(UserError, match=r"transformers >= 5\.10\.1; installed: 4\.46\.3") as err:
        ocr2_config.require_transformers()
    assert "\n" not in str(err.value)


def test_source_is_registered_with_the_v1_decoder() -> None:
    source = resolve_model_source("deepseek-ocr-2")
    assert isinstance(source, Ocr2ModelSource)
    assert (source.config.hidden_size, source.config.n_routed_experts, source.config.num_experts_per_tok) == (
        1280,
        64,
        6,
    )
    with pytest.raises(UserError, match="trace_workload"):
        source.make_inputs(None)


def test_v1_workloads_map_onto_the_dynamic_mode() -> None:
    v1 = Workload.create(mode="gundam", page=(1920, 1080), max_new_tokens=7)
    work = to_ocr2_workload(v1)
    assert (work.mode.name, work.page, work.max_new_tokens, work.prompt_tokens) == ("dynamic", (1920, 1080), 7, 9)


@pytest.fixture(scope="module")
def ocr2_model() -> nn.Module:
    if not NEW_ENOUGH:
        pytest.skip("needs transformers >= 5.10.1")
    model: nn.Module = resolve_model_source("deepseek-ocr-2").build()
    return model


@needs_transformers
def test_parameter_total_matches_the_published_checkpoint(ocr2_model: nn.Module) -> None:
    total = sum(p.numel() for p in ocr2_model.parameters())
    decoder = 129280 * 1280 * 2 + 2_603_776_000 + 1280  # embed + lm_head (untied) + 12 layers + norm: v1's decoder
    sam = 95_569_152 - 3 * 3 * 512 * (1024 - 896)  # v1's SAM-B with net_3 512->896 instead of 512->1024
    layer = (896 * 896 + 896) + 2 * (896 * 128 + 128) + 896 * 896 + 3 * 896 * 4864 + 2 * 896  # Qwen2-0.5B layer
    encoder = 24 * layer + 896 + (144 + 256) * 896  # 24 layers, final norm, 768/1024 query banks
    projector, separator = 896 * 1280 + 1280, 1280
    assert total == decoder + sam + encoder + projector + separator == 3_389_119_360
    index = source_facts()["checkpoint_index"]
    # the index lists 2707 tensors: ours minus 11 fused expert pairs plus 11 x 64 x 3 per-expert matrices
    assert len(dict(ocr2_model.named_parameters())) - 11 * 2 + 11 * 64 * 3 == index["tensors"]
    # total_size / 2 bytes would be 3,389,624,704 bf16 values: 505,344 (0.015 %) more than the tree holds; the index
    # has no shapes to say which tensors differ (fp32 storage of some would explain it), so this is a bound only
    assert abs(index["total_size_bytes"] / 2 - total) / total < 2e-4


@pytest.fixture(scope="module")
def traced(ocr2_model: nn.Module) -> tuple[Any, Any]:
    source = deepseek_ocr2_source()
    result, driver = trace_with_driver(
        source, Ocr2Workload.create(page=(1024, 1024), max_new_tokens=3), attention="flash", model=ocr2_model
    )
    return result, source.provenance(driver)


@needs_transformers
def test_trace_stages_and_closed_forms(traced: tuple[Any, Any]) -> None:
    result, provenance = traced
    assert result.unsupported == ()
    assert list(result.root.children) == ["vision", "projector", "prefill", "decode"]
    S = 1 + (256 + 4 * 144 + 1) + 9
    assert result.seq_len == S == 843
    tokens = 512 + 4 * 288  # encoder sequences: 256 patches + 256 queries (global), 144 + 144 per tile
    mlp = result.node("vision/model.vision_tower.vision_encoder.layers.{0..23}.mlp")
    assert mlp.cost.matmul_flops == 24 * 2 * tokens * 3 * 896 * 4864
    assert result.node("projector/model.multi_modal_projector").cost.matmul_flops == 2 * (256 + 4 * 144) * 896 * 1280
    experts = result.node("prefill/model.language_model.layers.{1..11}.mlp.experts")
    assert experts.cost.matmul_flops == 11 * 2 * S * 6 * 3 * 1280 * 896  # k = 6 experts per token, SwiGLU
    assert result.node("prefill/lm_head").cost.matmul_flops == 2 * S * 1280 * 129280
    uses = {record.kind: record.uses for record in provenance.adapters}
    assert uses == {"counting-experts": 11 * 3, "placeholder-check-from-workload": 1, "kv-cache-preallocated": 12 * 3}


@needs_transformers
@pytest.mark.parametrize("routing", ["balanced", "skewed:1.2"])
def test_experts_of_one_slice_size_are_counted_once_and_the_trace_is_the_same(
    ocr2_model: nn.Module, routing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused experts mark each expert's call repeatable (core.repeats): per layer the experts of one slice size
    run once; a trace with that replay equals one without on every node, peaks and the decode basis included."""
    replayed: list[str] = []  # the path of every replayed call
    play = replay._play
    monkeypatch.setattr(replay, "_play", lambda *args: (replayed.append(args[2]), play(*args))[1])
    source = deepseek_ocr2_source()
    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=12, batch_size=8)
    kwargs: dict[str, Any] = {"attention": "flash", "model": ocr2_model, "routing": RoutingModel.parse(routing)}
    with_replay = trace_with_basis(source, work, far_new_tokens=40, **kwargs)
    # 11 MoE layers x 4 passes of 64 experts: balanced routing gives each layer at most two slice sizes, skewed more
    assert len(replayed) > 11 * 4 * (40 if routing == "balanced" else 20)
    assert all(path.endswith(".mlp.experts") for path in replayed)  # (the fused experts module of each layer)
    without = trace_with_basis(source, work, far_new_tokens=40, replay=False, **kwargs)
    assert with_replay[0] == without[0]
    assert with_replay[2] == without[2]
