"""Meta adapters: each upstream spot fails on meta as written, works with its adapter, is restored after, and a
changed spot is refused with a message naming the class and method."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from upstream_helpers import REQUIRES_TRANSFORMERS

from llm_perf_opt.sources.upstream.adapters import (
    REVIEWED_MOE_INFER,
    AdapterRefusedError,
    AdapterSet,
    UnadaptedSpotError,
)
from llm_perf_opt.sources.upstream.fingerprint import method_source
from llm_perf_opt.sources.upstream.source import UpstreamModelSource, resolve_snapshot
from llm_perf_opt.workloads import RoutingModel

pytestmark = REQUIRES_TRANSFORMERS

META = torch.device("meta")


def _classes(model: nn.Module) -> dict[str, type]:
    return {type(m).__name__: type(m) for m in model.modules()}


def test_adapters_found_on_the_fixture(fixture_model: nn.Module) -> None:
    records = {r.kind: r for r in AdapterSet(fixture_model).records()}
    assert sorted(records) == [
        "autocast-skipped-on-meta",
        "cuda-noop-on-meta",
        "item-from-workload",
        "moe-shape-only-dispatch",
    ]
    assert records["item-from-workload"].target == "modeling_fixture.DeepseekOCRModel.forward"
    assert records["moe-shape-only-dispatch"].target == "modeling_fixture.DeepseekV2MoE.moe_infer"
    assert records["moe-shape-only-dispatch"].reviewed_as.startswith("llm-perf-opt test fixture")
    assert records["autocast-skipped-on-meta"].target == "modeling_fixture.LlamaRotaryEmbedding.forward"


def test_reviewed_fingerprint_of_the_fixture_moe_is_current(fixture_model: nn.Module) -> None:
    moe = _classes(fixture_model)["DeepseekV2MoE"]
    assert method_source(moe, "moe_infer").sha256 in REVIEWED_MOE_INFER


def test_rope_autocast_fails_on_meta_without_and_runs_with_the_adapter(fixture_model: nn.Module) -> None:
    rope = fixture_model.model.layers[0].self_attn.rotary_emb
    x = torch.empty((1, 10, 5, 128), device=META, dtype=torch.bfloat16)
    pos = torch.arange(5, device=META)[None]
    with pytest.raises(RuntimeError):
        rope(x, pos)
    adapters = AdapterSet(fixture_model)
    with adapters.active(answers={}, routing=RoutingModel.balanced()):
        cos, sin = rope(x, pos)
    assert cos.shape == (1, 5, 128) and sin.dtype == torch.bfloat16
    assert {r.kind: r.uses for r in adapters.records()}["autocast-skipped-on-meta"] == 1


def test_moe_host_copy_fails_on_meta_and_routing_sizes_the_slices(fixture_model: nn.Module) -> None:
    moe = fixture_model.model.layers[1].mlp
    x = torch.empty((7, 1280), device=META, dtype=torch.bfloat16)
    ids = torch.empty((7, 2), device=META, dtype=torch.long)
    weights = torch.empty((7, 2), device=META, dtype=torch.float32)
    with pytest.raises(NotImplementedError, match="meta"):
        moe.moe_infer(x, ids, weights)
    seen: list[int] = []
    hooks = [e.register_forward_hook(lambda m, a, o: seen.append(a[0].shape[0])) for e in moe.experts]
    try:
        with AdapterSet(fixture_model).active(answers={}, routing=RoutingModel.balanced()):
            out = moe.moe_infer(x, ids, weights)
    finally:
        for hook in hooks:
            hook.remove()
    assert out.shape == (7, 1280)
    # 7 tokens x top-2 = 14 assignments over 4 experts: 3 each, the 2 extra start at layer_idx*k mod E = 1*2 mod 4
    assert seen == [3, 3, 4, 4]


def test_presence_item_needs_an_answer_and_everything_is_restored(fixture_model: nn.Module) -> None:
    classes = _classes(fixture_model)
    originals = {
        name: dict(cls.__dict__) for name, cls in classes.items() if name in ("DeepseekOCRModel", "DeepseekV2MoE")
    }
    ids = torch.zeros((1, 5), dtype=torch.long, device=META)
    views = (torch.empty((1, 3, 640, 640), device=META), torch.empty((1, 3, 1024, 1024), device=META))
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "images": [views],
        "images_seq_mask": ids.bool(),
        "images_spatial_crop": [(1, 1)],
    }
    with pytest.raises(RuntimeError, match="item"):
        fixture_model.model(**kwargs)
    with (
        pytest.raises(UnadaptedSpotError, match="not the sum of an input view"),
        AdapterSet(fixture_model).active(answers={}, routing=RoutingModel.balanced()),
    ):
        fixture_model.model(**kwargs)
    for name, attrs in originals.items():
        assert classes[name].__dict__["forward"] is attrs["forward"]
        assert classes[name].__dict__.get("moe_infer") is attrs.get("moe_infer")


def _refused(root: Path) -> str:
    source = resolve_snapshot(f"hf-snapshot:{root}").trust(True)
    with pytest.raises(AdapterRefusedError) as err:
        source.build()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_changed_moe_infer_is_refused(snapshot_copy: Callable[..., Path]) -> None:
    message = _refused(snapshot_copy(("modeling_fixture.py", "begin += count", "begin = begin + count")))
    assert "modeling_fixture.DeepseekV2MoE.moe_infer" in message
    assert "not one of the reviewed versions" in message


def test_changed_moe_signature_is_refused(snapshot_copy: Callable[..., Path]) -> None:
    root = snapshot_copy(
        (
            "modeling_fixture.py",
            "def moe_infer(self, x, topk_ids, topk_weight):",
            "def moe_infer(self, x, topk_ids, topk_weight, scale=1):",
        )
    )
    assert "parameters are no longer self, x, topk_ids, topk_weight" in _refused(root)


def test_item_not_on_a_sum_is_refused(snapshot_copy: Callable[..., Path]) -> None:
    root = snapshot_copy(("modeling_fixture.py", "torch.sum(crops).item() != 0", "crops.abs().amax().item() != 0"))
    message = _refused(root)
    assert "modeling_fixture.DeepseekOCRModel.forward" in message


def test_enabled_autocast_is_refused(snapshot_copy: Callable[..., Path]) -> None:
    root = snapshot_copy(
        ("modeling_fixture.py", "device_type=x.device.type, enabled=False", "device_type=x.device.type")
    )
    assert "modeling_fixture.LlamaRotaryEmbedding.forward" in _refused(root)


def test_comments_do_not_change_a_fingerprint(snapshot_copy: Callable[..., Path]) -> None:
    root = snapshot_copy(
        ("modeling_fixture.py", "        begin = 0\n", "        # a reviewer's note\n        begin = 0\n")
    )
    source: UpstreamModelSource = resolve_snapshot(f"hf-snapshot:{root}").trust(True)
    model = source.build()
    assert {r.kind for r in AdapterSet(model).records()} >= {"moe-shape-only-dispatch"}
