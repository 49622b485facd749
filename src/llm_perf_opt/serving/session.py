"""From what a person asks (:class:`SimulateOptions`) to a ready simulation: settings, request mix, KV budget, timer.

The CLI's ``simulate`` and ``plan`` and the benchmarks go through :func:`prepare`; every bound a flag can break is
checked here, before any simulation runs, as one :class:`~llm_perf_opt.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from attrs import evolve, field, frozen

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import DeviceSpec, get_device, normalize_dtype
from llm_perf_opt.perf.iteration import IterationTimer
from llm_perf_opt.serving.engine import Load
from llm_perf_opt.serving.memory import KvBudget, ModelConfig, kv_budget
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix
from llm_perf_opt.serving.settings import RUNTIMES, SchedulerSettings, default_settings
from llm_perf_opt.serving.simulate import SimulationResult, simulate

__all__ = [
    "DEFAULT_MODES",
    "MODELS",
    "ConfigResolver",
    "Prepared",
    "SimulateOptions",
    "TimerFactory",
    "builtin_config",
    "curve",
    "opening_burst",
    "prepare",
    "run_simulation",
    "with_device",
]

MODELS: tuple[str, ...] = ("deepseek-ocr-v1-base", "deepseek-ocr-2")
"""Models the simulator serves."""

DEFAULT_MODES: dict[str, str] = {"deepseek-ocr-v1-base": "gundam", "deepseek-ocr-2": "dynamic"}
"""The page mode when none is given."""

ConfigResolver = Callable[[str], ModelConfig]
"""``model id -> config``; DeepSeek-OCR-2's config is read by ``sources`` (the CLI passes a resolver that does)."""


def builtin_config(model: str) -> ModelConfig:
    """v1's config; anything else needs a resolver from the caller."""
    if model == "deepseek-ocr-v1-base":
        return DeepseekOCRConfig.base()
    raise UserError(f"model {model!r} needs its config from the caller (the CLI resolves deepseek-ocr-2)")


Lengths = int | LengthDistribution


@frozen(kw_only=True)
class SimulateOptions:
    """Everything ``simulate`` takes (the flags of ``llm-perf-opt simulate``)."""

    model: str = "deepseek-ocr-v1-base"
    runtime: str = "vllm"
    device: str = "h100-sxm"
    dtype: str = "bf16"
    mode: str | None = None
    image: tuple[int, int] = (1024, 1024)
    text_only: bool = False
    prompt_tokens: Lengths = 9
    output_tokens: Lengths = 512
    concurrency: int | None = None
    rate: float | None = None
    requests: int = 1000
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    repetition_share: float = 0.0
    seed: int = 0
    context_quantum: int = field(default=64, metadata={"help": "decode context rounding of the timer cache"})


TimerFactory = Callable[[str, ModelConfig, DeviceSpec, str, RequestMix], IterationTimer]
"""``(runtime, config, device, dtype, mix) -> IterationTimer``."""


@frozen(kw_only=True)
class Prepared:
    """A simulation ready to run."""

    options: SimulateOptions
    config: ModelConfig
    device: DeviceSpec
    dtype: str
    mix: RequestMix
    settings: SchedulerSettings
    budget: KvBudget
    timer: IterationTimer
    timer_source: str

    def load(self, *, concurrency: int | None = None, requests: int | None = None) -> Load:
        """The options' load, or a closed loop at ``concurrency`` (with ``requests``) for curves and plans."""
        if concurrency is not None:
            return Load(requests=requests or self.options.requests, concurrency=concurrency)
        return Load(requests=self.options.requests, concurrency=self.options.concurrency, rate=self.options.rate)

    def describe(self) -> dict[str, Any]:
        """Model, device, runtime and timer: the header of every output."""
        return {
            "model": self.options.model,
            "runtime": self.settings.runtime,
            "device": self.device.device_id,
            "dtype": self.dtype,
            "timer": self.timer_source,
        }

    def run(self, load: Load | None = None) -> SimulationResult:
        """Simulate ``load`` (default: the options' load).  The latency percentiles of a closed loop leave out its
        opening burst (:func:`opening_burst`), so ``simulate``, its curve and ``plan`` report the same steady-state
        statistic; throughput counts the whole run."""
        chosen = load or self.load()
        return simulate(
            model=self.options.model,
            skip_first=opening_burst(chosen),
            mix=self.mix,
            load=chosen,
            timer=self.timer,
            settings=self.settings,
            budget=self.budget,
            seed=self.options.seed,
            context_quantum=self.options.context_quantum,
            describe=self.describe(),
        )


def _check_load(o: SimulateOptions) -> None:
    if (o.concurrency is None) == (o.rate is None):
        raise UserError("give exactly one of --concurrency C (closed loop) or --rate R (open loop, requests/s)")
    if o.concurrency is not None and o.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1 (clients sending requests), got {o.concurrency}")
    if o.rate is not None and not o.rate > 0:
        raise UserError(f"--rate must be > 0 requests per second, got {o.rate}")
    if o.requests < 1:
        raise UserError(f"--requests must be >= 1, got {o.requests}")


def prepare(
    options: SimulateOptions,
    *,
    timer_factory: TimerFactory,
    check_load: bool = True,
    config_resolver: ConfigResolver = builtin_config,
) -> Prepared:
    """Resolve and check everything (see the module docstring); the timer comes from ``timer_factory``, the model's
    config from ``config_resolver``."""
    if check_load:
        _check_load(options)
    if options.model not in MODELS:
        raise UserError(f"unknown model {options.model!r} for simulate; expected one of: {', '.join(MODELS)}")
    if options.runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {options.runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    device = get_device(options.device)
    dtype = normalize_dtype(options.dtype)
    if dtype not in ("bf16", "fp16"):
        raise UserError(f"--dtype must be bf16 or fp16 for serving, got {options.dtype!r}")
    if dtype not in device.peak_flops:
        raise UserError(f"{device.device_id} has no {dtype} peak ({', '.join(device.dtypes)}); pick another --dtype")
    config = config_resolver(options.model)
    if options.text_only:
        mix = RequestMix(
            workload=None,
            prompt_tokens=options.prompt_tokens,
            output_tokens=options.output_tokens,
            repetition_share=options.repetition_share,
        )
    else:
        mix = RequestMix.pages(
            mode=options.mode or DEFAULT_MODES[options.model],
            page=options.image,
            prompt_tokens=options.prompt_tokens,
            output_tokens=options.output_tokens,
            repetition_share=options.repetition_share,
            config=config,
        )
    mix.check()
    settings = default_settings(
        options.runtime,
        device,
        max_num_seqs=options.max_num_seqs,
        max_num_batched_tokens=options.max_num_batched_tokens,
        gpu_memory_utilization=options.gpu_memory_utilization,
    )
    budget = kv_budget(config=config, device=device, dtype=dtype, settings=settings, mix=mix)
    timer = timer_factory(options.runtime, config, device, dtype, mix)
    source = getattr(timer, "describe", None)
    return Prepared(
        options=options,
        config=config,
        device=device,
        dtype=dtype,
        mix=mix,
        settings=settings,
        budget=budget,
        timer=timer,
        timer_source=source() if callable(source) else type(timer).__name__,
    )


def run_simulation(options: SimulateOptions, *, timer_factory: TimerFactory) -> SimulationResult:
    """:func:`prepare` then run the options' load."""
    return prepare(options, timer_factory=timer_factory).run()


def with_device(options: SimulateOptions, device: str) -> SimulateOptions:
    """The same options on another device."""
    return evolve(options, device=device)


def opening_burst(load: Load) -> int:
    """Requests of ``load`` sent together at t = 0: a closed loop's ``C`` clients each send at once, so those ``C``
    requests queue behind each other's prefill - a cold start whose latencies depend on how many requests follow
    (25% of a 4-per-client run, 1% of a 100-per-client run).  An open loop has none."""
    return load.concurrency or 0


def curve(
    prepared: Prepared, grid: Sequence[int], *, requests_per_client: int = 4
) -> list[tuple[int, SimulationResult]]:
    """Closed-loop runs over ``grid`` concurrencies, ``max(requests_per_client * C, 16)`` requests each."""
    return [(c, prepared.run(prepared.load(concurrency=c, requests=max(requests_per_client * c, 16)))) for c in grid]
