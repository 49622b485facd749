"""Loading remote code: imported from the hashed bytes under transformers_modules.*, built on meta, no weights."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn
from upstream_helpers import REQUIRES_TRANSFORMERS

from llm_perf_opt.sources.upstream.loader import PACKAGE_PREFIX, build_meta_model, load_remote_code
from llm_perf_opt.sources.upstream.snapshot import read_snapshot
from llm_perf_opt.tracer.grouping import qualified_class_name

pytestmark = REQUIRES_TRANSFORMERS


def test_classes_live_under_a_transformers_modules_package(fixture_model: nn.Module) -> None:
    module = type(fixture_model).__module__
    assert module.startswith(PACKAGE_PREFIX) and module.endswith(".modeling_fixture")
    assert qualified_class_name(fixture_model) == "modeling_fixture.DeepseekOCRForCausalLM"
    assert qualified_class_name(fixture_model.model.layers[0].mlp) == "fixture_layers.DeepseekV2MLP"
    assert "self.down_proj" in inspect.getsource(type(fixture_model.model.layers[0].mlp))


def test_tree_on_meta_with_the_fixture_parameter_count(fixture_model: nn.Module) -> None:
    assert all(p.is_meta and p.dtype == torch.bfloat16 for p in fixture_model.parameters())
    assert not fixture_model.training
    expected = (
        2 * 512 * 1280  # embed_tokens + lm_head
        + 2 * 4 * 1280 * 1280  # q, k, v, o in 2 layers
        + 5 * 1280  # 2 x 2 RMSNorms + final norm
        + 3 * 1280 * 128  # layer 0 dense SwiGLU
        + 4 * 3 * 1280 * 32
        + 3 * 1280 * 32
        + 4 * 1280  # layer 1: 4 experts, shared expert, gate
        + (3 * 64 * 64 * 32 + 32)
        + 2 * 32  # patch conv + LayerNorm
        + 32
        + (32 * 32 + 32)  # class embedding + fc
        + (64 * 1280 + 1280)  # projector
        + 2 * 1280  # image_newline, view_seperator
    )
    assert sum(p.numel() for p in fixture_model.parameters()) == expected == 16_015_520


def test_the_hashed_bytes_run_not_the_file_on_disk(snapshot_copy: Any) -> None:
    root: Path = snapshot_copy(("fixture_layers.py", "def half_turn(x):", "def half_turn(x):  # edited copy"))
    snap = read_snapshot(root, source="hf-snapshot:bytes")
    (root / "fixture_layers.py").write_text("raise SystemExit('the file on disk must not run')\n", encoding="utf-8")
    remote = load_remote_code(snap)
    model = build_meta_model(remote, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == 16_015_520
    assert not list(root.rglob("__pycache__")), "nothing is written next to the snapshot"
    assert load_remote_code(snap) is remote  # once per fingerprint
