"""``trace_workload`` drives a source through its own driver and stage anchors when it has them."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from attrs import field, frozen
from torch import nn

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.sources.deepseek_ocr_v1.driver import BuiltinDriver
from llm_perf_opt.sources.registry import ModelSource
from llm_perf_opt.tracer.trace import DEEPSEEK_OCR_STAGES, stage_rules, trace_with_driver
from llm_perf_opt.workloads import RoutingModel, Workload


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(8, 8, bias=False)
        self.head = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(x))
        return out


class _ToyDriver:
    """Prefill on 5 rows; decode steps on 1 row each; S and N from the constructor."""

    def __init__(self, model: nn.Module, steps: int) -> None:
        self.model = model
        self.steps = steps
        self.seq_len = 5
        self.max_new_tokens = steps + 1

    @property
    def decode_steps(self) -> int:
        return self.steps

    def describe(self) -> str:
        return "toy workload"

    def _pass(self, rows: int) -> PassInputs:
        x = torch.empty((rows, 8), device="meta")
        return PassInputs(run=lambda: self.model(x), live=[x])

    def prefill(self) -> PassInputs:
        return self._pass(self.seq_len)

    def step(self, i: int) -> PassInputs:
        return self._pass(1)


def _build(config: DeepseekOCRConfig, *, device: Any, dtype: torch.dtype, attn_implementation: str) -> nn.Module:
    return _Toy().to("meta").eval()


@frozen(kw_only=True)
class _ToySource(ModelSource):
    stage_anchors: dict[str, tuple[str, ...]] = field(
        factory=lambda: {"vision": ("encoder",), "projector": (), "language": ("head",)}
    )
    seen: list[Any] = field(factory=list)

    def make_driver(self, model: nn.Module, workload: Any, routing: RoutingModel) -> _ToyDriver:
        self.seen.append((workload, routing))
        return _ToyDriver(model, steps=2)


def _toy_source() -> _ToySource:
    return _ToySource(name="toy", config=DeepseekOCRConfig.tiny(), builder=_build)


def test_a_source_driver_and_anchors_are_used() -> None:
    source = _toy_source()
    work = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=3)
    routing = RoutingModel.skewed(1.5)
    result, driver = trace_with_driver(source, work, attention="eager", routing=routing)
    assert isinstance(driver, _ToyDriver)
    assert source.seen == [(work, routing)]
    # S, N and the workload description come from the driver, the stages from the source's anchors
    assert (result.seq_len, result.max_new_tokens, result.workload) == (5, 3, "toy workload")
    assert set(result.root.children) == {"vision", "prefill", "decode"}
    assert result.nodes["vision/encoder"].cost.matmul_flops == 2 * (5 + 1 + 1) * 8 * 8  # a vision anchor, every pass
    assert result.nodes["decode/head"].cost.matmul_flops == 2 * (1 * 8 * 4) * 2  # 2 steps of 1 row
    assert result.nodes["prefill/head"].cost.matmul_flops == 2 * 5 * 8 * 4


def test_sources_without_hooks_get_the_builtin_driver_and_v1_anchors() -> None:
    source = ModelSource(name="deepseek-ocr-v1-tiny", config=DeepseekOCRConfig.tiny())
    assert stage_rules(source) is DEEPSEEK_OCR_STAGES
    assert stage_rules(_toy_source()).vision == ("encoder",)
    model = source.build()
    work = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=2)
    driver = source.make_driver(model, work, RoutingModel.balanced())
    assert isinstance(driver, BuiltinDriver)
    assert (driver.seq_len, driver.max_new_tokens, driver.decode_steps) == (work.seq_len, 2, 1)


@pytest.mark.parametrize("steps", [0])
def test_no_decode_step(steps: int) -> None:
    source = _toy_source()

    @frozen(kw_only=True)
    class _NoDecode(_ToySource):
        def make_driver(self, model: nn.Module, workload: Any, routing: RoutingModel) -> _ToyDriver:
            return _ToyDriver(model, steps=steps)

    result, _ = trace_with_driver(
        _NoDecode(name="toy", config=source.config, builder=_build), "dsocr-standard-v1", attention="eager"
    )
    assert result.decode_method == "none" and result.max_new_tokens == 1
