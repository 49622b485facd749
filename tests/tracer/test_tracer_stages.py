"""Stage kinds of module paths under the DeepSeek-OCR anchors (docs/architecture.md "Module ids")."""

from __future__ import annotations

from llm_perf_opt.tracer.stages import CONTAINER, LANGUAGE, PLAIN, PROJECTOR, VISION, StageRules, stage_kind
from llm_perf_opt.tracer.trace import DEEPSEEK_OCR_STAGES


def test_stage_kinds() -> None:
    rules = DEEPSEEK_OCR_STAGES
    assert stage_kind("model.sam_model.blocks.3.attn", rules) == VISION
    assert stage_kind("model.vision_model", rules) == VISION
    assert stage_kind("model.projector.layers", rules) == PROJECTOR
    assert stage_kind("model.layers.7.mlp.experts.12", rules) == LANGUAGE
    assert stage_kind("lm_head", rules) == LANGUAGE
    assert stage_kind("", rules) == CONTAINER
    assert stage_kind("model", rules) == CONTAINER
    assert stage_kind("model.sam_modelx", rules) == PLAIN  # a prefix match is by whole path components


def test_custom_rules() -> None:
    rules = StageRules(vision=("enc",), projector=(), language=("dec",))
    assert rules.anchors == ("enc", "dec")
    assert stage_kind("enc.0", rules) == VISION
    assert stage_kind("head", rules) == PLAIN
