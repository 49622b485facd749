"""The harness end to end on deepseek-ocr-v1-tiny on CPU (a few seconds), and its pieces."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import torch

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.measure.clock import HostClock, StageMarks, stage_anchors
from llm_perf_opt.measure.harness import (
    HarnessOptions,
    builtin_config,
    count_cpu_work_ops,
    count_cuda_kernels,
    count_decode_launches,
    device_busy_s,
    resolve_device,
    run_measurement,
    run_measurements,
    time_run,
)
from llm_perf_opt.sources.deepseek_ocr_v1 import build_inputs, build_model
from llm_perf_opt.workloads import Workload

TINY = DeepseekOCRConfig.tiny()
WORKLOAD = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=3, config=TINY)  # S = 1 + 73 + 9 = 83


@pytest.fixture(scope="module")
def eager_model() -> Iterator[torch.nn.Module]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_model(TINY, device="cpu", dtype=torch.float32, attn_implementation="eager")
    torch.set_num_threads(threads)


def test_end_to_end_on_cpu() -> None:
    threads = torch.get_num_threads()
    options = HarnessOptions(threads=1, warmup_runs=1, warmup_decode_steps=1, repeats=2, benchmark=False)
    m = run_measurement(TINY, WORKLOAD, options)
    assert m.model == "deepseek-ocr-v1-tiny"
    assert m.device.runtime == "cpu" and m.device.threads == 1
    assert m.clock == "perf_counter" and m.dtype == "fp32" and m.attention == "eager"
    assert m.workload.seq_len == 83 and m.workload.max_new_tokens == 3
    assert len(m.runs) == 2
    for run in m.runs:
        assert len(run.decode_steps_s) == 2  # max_new_tokens - 1
        assert run.vision_s > 0 and run.projector_s > 0 and run.prefill_s > 0
        assert all(step > 0 for step in run.decode_steps_s)
    assert m.kernels is not None
    assert m.kernels.step == 1 and m.kernels.method.startswith("cpu-leaf-aten-ops")
    assert m.kernels.per_decode_step > 3 * 10  # 3 decoder layers, each well over ten ops
    assert m.software.torch == torch.__version__
    assert m.run_id.startswith("meas-")
    assert torch.get_num_threads() == threads  # the harness restores the thread count


def test_stage_marks_follow_the_anchor_rule(eager_model: torch.nn.Module) -> None:
    inputs = build_inputs(TINY, WORKLOAD, device="cpu", dtype=torch.float32)
    marks = StageMarks(HostClock(), stage_anchors(eager_model))
    with torch.inference_mode(), marks.recording():
        eager_model(**inputs.prefill.kwargs(), past_key_values=inputs.new_cache())
    # embed_tokens runs first, then SAM+CLIP, the projector (+ view assembly), then the decoder
    assert marks.stage_sequence() == ["prefill", "vision", "projector", "prefill"]
    seconds = marks.seconds()
    total = marks.marks[-1][1] - marks.marks[0][1]
    assert sum(seconds.values()) == pytest.approx(total)


def test_stage_marks_with_crops_alternate_per_view_batch(eager_model: torch.nn.Module) -> None:
    workload = Workload.create(mode="gundam", page=(1280, 640), max_new_tokens=1, config=TINY)  # grid 2x1
    assert workload.num_crops == 2
    inputs = build_inputs(TINY, workload, device="cpu", dtype=torch.float32)
    marks = StageMarks(HostClock(), stage_anchors(eager_model))
    with torch.inference_mode(), marks.recording():
        eager_model(**inputs.prefill.kwargs(), past_key_values=inputs.new_cache())
    # crops: SAM, CLIP, projector; global view: SAM, CLIP, projector; then the decoder
    assert marks.stage_sequence() == ["prefill", "vision", "projector", "vision", "projector", "prefill"]


def test_timing_does_not_change_what_the_model_computes(eager_model: torch.nn.Module) -> None:
    inputs = build_inputs(TINY, WORKLOAD, device="cpu", dtype=torch.float32)
    with torch.inference_mode():
        plain = eager_model(**inputs.prefill.kwargs(), past_key_values=inputs.new_cache()).logits
        marks = StageMarks(HostClock(), stage_anchors(eager_model))
        with marks.recording():
            hooked = eager_model(**inputs.prefill.kwargs(), past_key_values=inputs.new_cache()).logits
    assert torch.equal(plain, hooked)
    assert not any(m._forward_pre_hooks for m in eager_model.modules())  # hooks removed afterwards


def test_time_run_times_every_decode_step(eager_model: torch.nn.Module) -> None:
    inputs = build_inputs(TINY, WORKLOAD, device="cpu", dtype=torch.float32)
    with torch.inference_mode():
        full = time_run(eager_model, inputs, HostClock())
        short = time_run(eager_model, inputs, HostClock(), decode_steps=1)
    assert len(full.decode_steps_s) == 2 and len(short.decode_steps_s) == 1


def test_sdpa_decode_runs_fewer_ops_than_eager(eager_model: torch.nn.Module) -> None:
    sdpa = build_model(TINY, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    inputs = build_inputs(TINY, WORKLOAD, device="cpu", dtype=torch.float32)
    with torch.inference_mode():
        eager_count = count_decode_launches(eager_model, inputs)
        sdpa_count = count_decode_launches(sdpa, inputs)
    assert eager_count is not None and sdpa_count is not None
    # eager attention is matmul + scale + fp32 softmax + cast + matmul per layer; sdpa is one fused op
    assert eager_count.per_decode_step > sdpa_count.per_decode_step


def test_each_step_is_reported_as_it_starts() -> None:
    heard: list[str] = []
    options = HarnessOptions(
        threads=1, warmup_runs=1, warmup_decode_steps=1, repeats=2, record_memory=False, benchmark=False
    )
    run_measurements(TINY, WORKLOAD, options, attentions=("eager", "sdpa"), progress=heard.append)
    assert heard == [
        "building deepseek-ocr-v1-tiny with random weights (eager attention, fp32 on cpu)",
        "building deepseek-ocr-v1-tiny with random weights (sdpa attention, fp32 on cpu)",
        "warm-up 1/1 (eager)",
        "warm-up 1/1 (sdpa)",
        "timed run 1/2 (eager, 2 decode steps)",
        "timed run 1/2 (sdpa, 2 decode steps)",
        "timed run 2/2 (eager, 2 decode steps)",
        "timed run 2/2 (sdpa, 2 decode steps)",
        "counting kernel launches under the profiler (eager)",
        "counting kernel launches under the profiler (sdpa)",
    ]


def test_unknown_model_and_missing_gpu_are_user_errors() -> None:
    with pytest.raises(UserError, match="deepseek-ocr-v1-tiny"):
        builtin_config("no-such-model")
    # DeepSeek-OCR-2's config is its decoder's (v1's keys): the harness would build a v1 tree with it, not OCR-2
    with pytest.raises(UserError, match=r"model source 'deepseek-ocr-2' is built another way"):
        builtin_config("deepseek-ocr-2")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="needs a CUDA GPU"):
            resolve_device("cuda")


def _event(name: str, device: str, children: tuple[object, ...] = (), kernels: tuple[str, ...] = ()) -> object:
    return SimpleNamespace(
        name=name, device_type=SimpleNamespace(name=device), cpu_children=list(children), kernels=list(kernels)
    )


def test_cuda_kernel_count_from_profiler_events() -> None:
    cpu = _event("aten::mm", "CPU")
    events = [cpu, _event("ampere_bf16_gemm", "CUDA"), _event("Memcpy HtoD (Pageable -> Device)", "CUDA"),
              _event("Memset (Device)", "CUDA"), _event("elementwise_kernel", "CUDA")]  # fmt: skip
    assert count_cuda_kernels(events) == 2
    # kernels attached to CPU ops (older layouts), and no device activity at all
    assert count_cuda_kernels([_event("aten::mm", "CPU", kernels=("gemm", "splitk"))]) == 2
    assert count_cuda_kernels([cpu]) is None


def test_cpu_work_ops_skip_views_and_parents() -> None:
    leaf = _event("aten::mm", "CPU")
    view = _event("aten::as_strided", "CPU")
    parent = _event("aten::linear", "CPU", children=(leaf, view))
    assert count_cpu_work_ops([parent, leaf, view, _event("aten::softmax", "CPU"), _event("cudaLaunch", "CPU")]) == 2


def test_device_busy_sums_kernel_durations() -> None:
    def device(name: str, start: float, end: float) -> object:
        return SimpleNamespace(
            name=name,
            device_type=SimpleNamespace(name="CUDA"),
            cpu_children=[],
            kernels=[],
            time_range=SimpleNamespace(start=start, end=end),
        )

    events = [_event("aten::mm", "CPU"), device("gemm", 10.0, 25.0), device("Memcpy DtoH", 25.0, 90.0),
              device("elementwise_kernel", 30.0, 32.5)]  # fmt: skip
    assert device_busy_s(events) == pytest.approx(17.5e-6)  # 15 us + 2.5 us; the copy is not a kernel
    # older layouts: Kernel(name, device, duration) attached to CPU ops
    older = [_event("aten::mm", "CPU", kernels=())]
    older[0].kernels = [SimpleNamespace(name="gemm", device=0, duration=4.0)]  # type: ignore[attr-defined]
    assert device_busy_s(older) == pytest.approx(4e-6)
    assert device_busy_s([_event("aten::mm", "CPU")]) is None


def test_profiler_runs_without_third_party_noise_on_stderr(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kineto printed 'USDT: ... profiler_start/stop' for every profiled forward (issue 17)."""
    from llm_perf_opt.measure.harness import _profiled

    monkeypatch.delenv("KINETO_LOG_LEVEL", raising=False)
    events = _profiled(lambda: torch.ones(3) + 1, cuda=False)
    assert events
    assert "USDT" not in capfd.readouterr().err
