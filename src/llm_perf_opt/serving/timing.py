"""The iteration timer a runtime gives the simulator: the runtime kernel models of :mod:`llm_perf_opt.runtimes`.

:func:`runtime_timer` is the :data:`~llm_perf_opt.serving.session.TimerFactory` the CLI uses: the runtime's
per-iteration cost over the batch's actual composition, with the mix's page workload pricing the vision encoder.
Text-only mixes probe the decoder with a text-only request of the mix's prompt (its mean when drawn from a file), as
``analyze --text-only`` does: a short prefill touches only some of the routed experts, and the runtime model scales
expert rows from its probe's own size (exactly 1 there), so one request alone gets analyze's TTFT and TPOT.
DeepSeek-OCR-2 has no text-only trace: its text-only mixes keep the standard page as the probe (never charged).
"""

from __future__ import annotations

from attrs import evolve, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.hardware import DeviceSpec
from llm_perf_opt.perf.iteration import BatchComposition, IterationTimer
from llm_perf_opt.runtimes import runtime_iteration_timer
from llm_perf_opt.runtimes.catalog import Runtime
from llm_perf_opt.serving.memory import ModelConfig
from llm_perf_opt.serving.requests import RequestMix
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["RuntimeTimer", "runtime_timer"]


@frozen(kw_only=True)
class RuntimeTimer:
    """A runtime's :class:`IterationTimer` with a description for the outputs."""

    inner: IterationTimer
    label: str
    request_overhead_s: float = 0.0

    def iteration_s(self, batch: BatchComposition) -> float:
        """The runtime model's seconds for ``batch``."""
        return self.inner.iteration_s(batch)

    def describe(self) -> str:
        """Which model timed the iterations."""
        return self.label


def _text_probe(config: DeepseekOCRConfig, mix: RequestMix) -> Workload:
    """A v1 text-only request of the mix's prompt length (``S`` = prompt + BOS) to probe the decoder with."""
    prompt = mix.prompt_tokens if isinstance(mix.prompt_tokens, int) else round(mix.prompt_tokens.mean)
    page = Workload.create(mode="gundam", page=(1024, 1024), prompt_tokens=prompt, max_new_tokens=2, config=config)
    return evolve(page, text_only=True)


def runtime_timer(
    runtime: str | Runtime, config: ModelConfig, device: DeviceSpec, dtype: str, mix: RequestMix
) -> RuntimeTimer:
    """The ``runtime`` kernel model on ``device`` for ``mix``'s pages (see the module docstring)."""
    probe: Workload | Ocr2Workload
    if mix.workload is not None:
        probe = mix.workload
    elif isinstance(config, DeepseekOCR2Config):
        probe = Ocr2Workload.create(mode="single", page=(1024, 1024), max_new_tokens=2)
    else:
        probe = _text_probe(config, mix)
    inner = runtime_iteration_timer(
        runtime=runtime, config=config, device=device.device_id, dtype=dtype, workloads={mix.vision_key: probe}
    )
    return RuntimeTimer(
        inner=inner,
        label=f"llm_perf_opt.runtimes {inner.runtime.runtime_id} kernel model (default profile)",
        request_overhead_s=inner.runtime.request_overhead_s,
    )
