"""Peak memory per stage of a real run: the CPU meter against the meta trace, and the CUDA meter on a fake allocator."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.measure.harness import HarnessOptions, run_measurement
from llm_perf_opt.measure.peak_memory import CpuMeter, CudaMeter, measure_memory, meter_for, resident_bytes
from llm_perf_opt.measure.predict import predicted_stage_peaks
from llm_perf_opt.perf.memory import kv_cache_bytes
from llm_perf_opt.sources.deepseek_ocr_v1 import build_inputs, build_model
from llm_perf_opt.workloads import Workload

TINY = DeepseekOCRConfig.tiny()


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_the_meta_trace_predicts_every_measured_stage_peak_exactly(attention: str) -> None:
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=3, config=TINY)
    options = HarnessOptions(
        attention="sdpa" if attention == "sdpa" else "eager",
        routing="balanced",
        threads=1,
        warmup_runs=0,
        repeats=1,
        benchmark=False,
        profile_kernels=False,
    )
    m = run_measurement(TINY, workload, options, model_name="deepseek-ocr-v1-tiny")
    assert m.memory is not None and m.memory.method == "live-bytes"
    measured = {s.stage: s.peak_bytes for s in m.memory.stages}
    assert list(measured) == ["vision", "projector", "prefill", "decode"]
    # both sides count the same storages: inputs, the KV cache (allocated before vision) and live activations
    assert predicted_stage_peaks(m) == measured
    kv = kv_cache_bytes(L=TINY.num_hidden_layers, H_kv=TINY.num_key_value_heads, D_h=TINY.head_dim, b=4, S=83, N=3)
    assert m.memory.kv_cache_bytes == kv
    assert min(measured.values()) > kv  # every stage holds the cache and something more


def test_weights_are_resident_bytes_and_not_part_of_any_peak() -> None:
    model = build_model(TINY, device="cpu", dtype=torch.float32, attn_implementation="eager")
    workload = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=2, config=TINY)
    inputs = build_inputs(TINY, workload, device=torch.device("cpu"), dtype=torch.float32)
    record = measure_memory(model, inputs)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert record.weights_bytes == resident_bytes(model) >= params
    model.register_buffer("ballast", torch.zeros(1_000_000))  # 4 MB more resident before the run
    again = measure_memory(model, inputs)
    assert again.weights_bytes == record.weights_bytes + 4_000_000
    assert again.stages == record.stages  # resident storage is in no stage's peak


class _FakeAllocator:
    """torch.cuda's statistics over a scripted allocation sequence."""

    def __init__(self) -> None:
        self.allocated = 1000  # weights
        self.peak = self.allocated
        self.resets = 0

    def alloc(self, n: int) -> None:
        self.allocated += n
        self.peak = max(self.peak, self.allocated)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cuda: Any = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: 4096 + self.peak)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", self._reset)

    def _reset(self, device: Any = None) -> None:
        self.resets += 1
        self.peak = self.allocated


def test_cuda_meter_resets_the_peak_at_every_stage_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeAllocator()
    fake.install(monkeypatch)
    meter = CudaMeter(torch.device("cuda", 0))
    with meter.running():
        fake.alloc(100)  # before any stage: the cache
        meter.enter_stage("vision")
        fake.alloc(500)  # vision peak above the weights: 100 + 500
        fake.alloc(-500)
        meter.enter_stage("prefill")
        fake.alloc(50)  # 150
        fake.alloc(-50)
        meter.enter_stage("decode")
        fake.alloc(20)  # 120
        fake.alloc(-20)
        meter.enter_stage("decode")
        fake.alloc(30)  # 130: the second step is the higher one
    assert meter.stage_peaks() == {
        "vision": (600, 4096 + 1600),
        "prefill": (150, 4096 + 1150),
        "decode": (130, 4096 + 1130),
    }
    assert fake.resets == 1 + 4  # at the start and at every boundary


def test_the_meter_follows_the_device() -> None:
    assert isinstance(meter_for(torch.device("cuda", 0)), CudaMeter)  # built without touching CUDA
    assert isinstance(meter_for(torch.device("cpu")), CpuMeter)
