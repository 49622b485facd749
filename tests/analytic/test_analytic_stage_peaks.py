"""Stage and root peak activations: the closed forms (``analytic.formulas.stage_peaks``) equal the traced live set.

The trace's peak is the validated one (equal to the live tensor storage of real CPU runs, docs/validation.md), so
sweep and analyze plan with the analytic number only because it is this one, byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.analytic import analytic_costs
from llm_perf_opt.analytic.formulas import stage_peaks as sp
from llm_perf_opt.sources.registry import resolve_model_source
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import Workload

STAGES = ("vision", "projector", "prefill", "decode", "root")
MODELS: dict[tuple[str, str], Any] = {}

# (mode, page, prompt tokens, N, batch)
GRID = [
    ("tiny", (512, 512), 1, 9, 4),
    ("small", (800, 800), 0, 2, 3),
    ("base", (1024, 1024), 9, 3, 1),
    ("base", (1024, 1024), 40, 1, 2),
    ("large", (1280, 1280), 20, 7, 4),
    ("gundam", (1024, 1024), 9, 3, 2),  # 2x2 crops
    ("gundam", (600, 500), 9, 3, 1),  # no crops
    ("gundam", (3000, 1000), 9, 2, 2),  # 3x1
    ("gundam", (2480, 3508), 2, 4, 3),  # 2x3
    ("gundam", (640, 1920), 14, 3, 3),  # 1x3: the crop re-tiling is a view
    ("gundam-m", (2000, 1000), 9, 2, 1),
    ("gundam-m", (1280, 1280), 37, 3, 2),  # the crop batch peaks above the global view
    ("gundam-m", (4000, 4000), 32, 1, 4),  # 3x3 crops
]


def _peaks(
    variant: str, attention: str, mode: str, page: tuple[int, int], T: int, N: int, B: int, *, text_only: bool = False
) -> list[str]:
    source = resolve_model_source(variant)
    key = (variant, attention)
    if key not in MODELS:
        MODELS[key] = source.build(attn_implementation="sdpa" if attention == "flash" else "eager")
    w = Workload.create(mode=mode, page=page, prompt_tokens=T, max_new_tokens=N, batch_size=B, config=source.config)
    w = evolve(w, text_only=text_only)
    trace = trace_workload(source, w, attention=attention, model=MODELS[key])
    tree = analytic_costs(source.config, w, attention=attention)
    misses = []
    for nid in STAGES:
        if nid not in trace.nodes:
            assert (nid == "decode" and N == 1) or (text_only and nid in ("vision", "projector"))
            assert nid not in tree
            continue
        traced, analytic = trace.node(nid).peak_activation_bytes, tree.peak_activation_bytes[nid]
        if traced != analytic:
            misses.append(f"{nid}: traced {traced} analytic {analytic}")
    return misses


@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize(("mode", "page", "T", "N", "B"), GRID)
def test_tiny_model_stage_peaks_equal_the_trace(
    attention: str, mode: str, page: tuple[int, int], T: int, N: int, B: int
) -> None:
    assert _peaks("deepseek-ocr-v1-tiny", attention, mode, page, T, N, B) == []


@pytest.mark.parametrize(
    ("attention", "mode", "page", "T", "N", "B"),
    [
        ("flash", "base", (1024, 1024), 9, 3, 1),
        ("eager", "gundam", (1024, 1024), 9, 3, 2),
        ("flash", "gundam", (3000, 1000), 0, 2, 2),
        ("eager", "tiny", (800, 800), 0, 4, 1),
    ],
)
def test_base_model_stage_peaks_equal_the_trace(
    attention: str, mode: str, page: tuple[int, int], T: int, N: int, B: int
) -> None:
    assert _peaks("deepseek-ocr-v1-base", attention, mode, page, T, N, B) == []


@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize(("T", "N", "B"), [(30, 3, 1), (100, 4, 2), (7, 2, 3)])
def test_text_only_stage_peaks_equal_the_trace(attention: str, T: int, N: int, B: int) -> None:
    misses = _peaks("deepseek-ocr-v1-tiny", attention, "base", (1024, 1024), T, N, B, text_only=True)
    assert misses == []


def test_prefill_peak_is_the_logits_or_the_eager_scores() -> None:
    # B=1, S=10, D=8, H=2, h_d=4, V=100, a=2: logits 10*(200+400+16) = 6160; eager 2*100*10 + 10^2*2 + 10*(4*8+2*4)*2
    flash = sp.prefill_peak(inputs=7, B=1, S=10, D=8, H=2, h_d=4, V=100, eager=False, a=2)
    assert flash == 7 + 6160
    eager = sp.prefill_peak(inputs=7, B=1, S=10, D=8, H=2, h_d=4, V=1, eager=True, a=2)
    assert eager == 7 + 2000 + 200 + 800
