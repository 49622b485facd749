"""The full-size model's meta forward for every resolution mode, and its FLOPs against the model-facts §3.7.

FLOPs are torch's ``FlopCounterMode`` on meta (matmul + conv, 2 FLOP per MAC), exactly as docs/model-facts.md counted.
Each case runs a full prefill and one decode step of the 3.3 B-parameter model on meta (seconds): marked slow.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.sources.deepseek_ocr_v1 import DeepseekOCRForCausalLM, build_inputs, build_model
from llm_perf_opt.workloads import Workload

pytestmark = pytest.mark.slow

BASE = DeepseekOCRConfig.base()

PAGES = {
    "tiny": (512, 512),
    "small": (640, 640),
    "base": (1024, 1024),
    "large": (1280, 1280),
    "gundam": (1024, 1024),  # 2x2 crops
    "gundam-m": (2480, 3508),  # A4 at 300 dpi: 2x3 crops of 1024
}
SEQ_LEN = {
    "tiny": 1 + (8 * 9 + 1) + 9,  # 83
    "small": 1 + (10 * 11 + 1) + 9,  # 121
    "base": 1 + (16 * 17 + 1) + 9,  # 283
    "large": 1 + (20 * 21 + 1) + 9,  # 431
    "gundam": 1 + 273 + (10 * 2) * (10 * 2 + 1) + 9,  # 703
    "gundam-m": 1 + (20 * 21 + 1) + (16 * 3) * (16 * 2 + 1) + 9,  # 2015
}


def _per_module(counter: FlopCounterMode) -> dict[str, int]:
    """Inclusive FLOPs per module path (FlopCounterMode prefixes the root class name)."""
    root = "DeepseekOCRForCausalLM"
    out: dict[str, int] = {}
    for name, by_op in counter.get_flop_counts().items():
        path = "" if name in (root, "Global") else name.removeprefix(f"{root}.")
        out[path] = int(sum(by_op.values()))
    return out


def _trace(model: DeepseekOCRForCausalLM, mode: str, *, count: bool) -> dict[str, Any]:
    """Prefill + decode step 1 on meta; FLOPs per module when ``count`` (FlopCounterMode roughly doubles the time)."""
    workload = Workload.create(mode=mode, page=PAGES[mode], max_new_tokens=2)
    inputs = build_inputs(BASE, workload)
    cache = inputs.new_cache()
    with FlopCounterMode(display=False) if count else contextlib.nullcontext() as prefill_fc:
        prefill = model(**inputs.prefill.kwargs(), past_key_values=cache)
    prefill_kv = [t.shape for t in cache.layer(0)]
    with FlopCounterMode(display=False) if count else contextlib.nullcontext() as decode_fc:
        step = model(**inputs.decode_step(1).kwargs(), past_key_values=cache)
    return {
        "S": inputs.seq_len,
        "prefill_logits": prefill.logits,
        "step_logits": step.logits,
        "prefill_kv": prefill_kv,
        "kv_layers": [(k.shape, v.shape) for k, v in (cache.layer(i) for i in range(12))],
        "prefill": _per_module(prefill_fc) if count else {},
        "decode": _per_module(decode_fc) if count else {},
    }


COUNTED = ("gundam", "base")  # the two workloads of docs/model-facts.md's FLOP table


@pytest.fixture(scope="module")
def traces(base_meta: DeepseekOCRForCausalLM) -> dict[str, dict[str, Any]]:
    return {mode: _trace(base_meta, mode, count=mode in COUNTED) for mode in PAGES}


@pytest.mark.parametrize("mode", list(PAGES))
def test_every_mode_gives_full_logits_and_kv_cache(traces: dict[str, dict[str, Any]], mode: str) -> None:
    t = traces[mode]
    S = SEQ_LEN[mode]
    assert t["S"] == S
    assert t["prefill_logits"].shape == (1, S, 129280)
    assert t["prefill_logits"].dtype == torch.float32
    assert t["prefill_kv"] == [(1, 10, S, 128), (1, 10, S, 128)]
    assert t["step_logits"].shape == (1, 1, 129280)
    assert t["kv_layers"] == [((1, 10, S + 1, 128), (1, 10, S + 1, 128))] * 12


def _gflop(flops: int) -> float:
    return round(flops / 1e9, 3)


def _mflop(flops: int) -> float:
    return round(flops / 1e6, 3)


def test_gundam_prefill_flops_match_the_facts_sheet(traces: dict[str, dict[str, Any]]) -> None:
    gundam, base = traces["gundam"]["prefill"], traces["base"]["prefill"]
    assert _gflop(gundam[""]) == 3530.110
    # the global view is the same 1024 px view as in Base mode; the rest of SAM/CLIP is the 4 crops
    assert _gflop(gundam["model.sam_model"] - base["model.sam_model"]) == 1302.483
    assert _gflop(gundam["model.vision_model"] - base["model.vision_model"]) == 248.019
    assert gundam["model.projector"] == 2 * 656 * 2048 * 1280  # 3.439 GFLOP
    layers = [gundam[f"model.layers.{i}"] for i in range(12)]
    assert _gflop(sum(layers)) == 604.881
    assert _gflop(layers[0]) == 48.717
    assert {_gflop(f) for f in layers[1:]} == {50.560}
    assert gundam["lm_head"] == 2 * 703 * 1280 * 129280  # 232.663 GFLOP on all S positions


def test_base_prefill_flops_match_the_facts_sheet(traces: dict[str, dict[str, Any]]) -> None:
    base = traces["base"]["prefill"]
    assert _gflop(base[""]) == 1469.826
    assert _gflop(base["model.sam_model"]) == 976.909
    assert _gflop(base["model.vision_model"]) == 161.716
    assert base["model.projector"] == 2 * 256 * 2048 * 1280  # 1.342 GFLOP
    layers = [base[f"model.layers.{i}"] for i in range(12)]
    assert _gflop(sum(layers)) == 236.198
    assert (_gflop(layers[0]), _gflop(layers[1])) == (19.003, 19.745)
    assert base["lm_head"] == 2 * 283 * 1280 * 129280  # 93.661 GFLOP


@pytest.mark.parametrize(
    ("mode", "layers_mflop", "total_mflop"), [("gundam", 860.489, 1191.446), ("base", 834.684, 1165.641)]
)
def test_decode_step_flops_match_the_facts_sheet(
    traces: dict[str, dict[str, Any]], mode: str, layers_mflop: float, total_mflop: float
) -> None:
    decode = traces[mode]["decode"]
    assert _mflop(decode[""]) == total_mflop
    assert _mflop(sum(decode[f"model.layers.{i}"] for i in range(12))) == layers_mflop
    assert decode["lm_head"] == 2 * 1280 * 129280  # 330.957 MFLOP
    assert "model.sam_model" not in decode  # no vision in a decode step


def test_sdpa_counts_the_same_dense_flops_on_meta(traces: dict[str, dict[str, Any]]) -> None:
    sdpa = build_model(BASE, attn_implementation="sdpa")
    t = _trace(sdpa, "base", count=True)
    assert t["prefill"][""] == traces["base"]["prefill"][""]
    assert t["decode"][""] == traces["base"]["decode"][""]
    assert t["prefill_logits"].shape == (1, 283, 129280)
