"""Predicted vs published, point by point: the data behind docs/validation-runtimes.md.

A predictor per point kind turns a :class:`~llm_perf_opt.runtimes.published.PublishedPoint` into a predicted value
and the runtime facts that drive it.  Built in: ``single-request`` (one request alone through the runtime's
:class:`~llm_perf_opt.runtimes.timer.RuntimeIterationTimer`) and ``serving`` (:func:`steady_state_serving`, a
closed-loop estimate on the same timer that the serving simulator is meant to replace: pass ``predictors`` with a
``serving`` entry).  The page itself: :mod:`.validation_md`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf.iteration import BatchComposition, PrefillChunk
from llm_perf_opt.runtimes.catalog import Runtime, get_runtime
from llm_perf_opt.runtimes.costs import ModelConfig, WorkloadLike
from llm_perf_opt.runtimes.published import PublishedPoint, PublishedSource
from llm_perf_opt.runtimes.timer import RuntimeIterationTimer, device_kernel_gap_s, runtime_iteration_timer
from llm_perf_opt.workloads import Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = [
    "GOAL",
    "PointResult",
    "Predicted",
    "Predictor",
    "WorkloadFactory",
    "default_predictors",
    "point_workload",
    "steady_state_serving",
    "validate",
]

GOAL = 0.25
"""The goal: every point whose conditions are stated within +-25%."""


@frozen(kw_only=True)
class Predicted:
    """A predicted value in the point's metric and unit, and the facts that drive it (one line)."""

    value: float
    drivers: str


Predictor = Callable[[PublishedPoint], Predicted]
WorkloadFactory = Callable[[PublishedPoint], WorkloadLike]
"""The page workload of a point (for text-only points: any page of the model, used only as the decoder probe)."""


@frozen(kw_only=True)
class PointResult:
    """One point: published, predicted, error = predicted / published - 1, and why."""

    point: PublishedPoint
    source: str
    predicted: float | None
    drivers: str
    error: float | None = field(default=None)

    @property
    def within_goal(self) -> bool | None:
        """|error| <= 25%; None without a prediction."""
        return None if self.error is None else abs(self.error) <= GOAL


def _timer(
    point: PublishedPoint, config: ModelConfig, workload: WorkloadLike, runtimes: Mapping[str, Runtime]
) -> RuntimeIterationTimer:
    key = "" if point.text_only else "page"
    return runtime_iteration_timer(
        runtime=runtimes.get(point.runtime, point.runtime),
        config=config,
        device=point.device,
        dtype=point.dtype,
        workloads={key: workload},
    )


def _prompt(point: PublishedPoint, workload: WorkloadLike) -> int:
    if point.text_only:
        if point.prompt_tokens is None:
            raise UserError(f"published point {point.point_id}: a text-only point needs prompt_tokens")
        return point.prompt_tokens
    return workload.seq_len


def _decode_facts(timer: RuntimeIterationTimer, contexts: tuple[int, ...]) -> str:
    terms = timer.decode_terms(contexts=contexts)
    gap = device_kernel_gap_s(get_device(timer.rates.device_id))
    return (
        f"{terms.kernels:.0f} kernels/step x {gap * 1e6:.0f} us gap = {terms.gap_s * 1e3:.2f} ms, "
        f"{terms.bytes / 1e9:.2f} GB/step roofline {terms.roofline_s * 1e3:.2f} ms, "
        f"host {terms.step_host_s * 1e3:.2f} ms/step, graphs {terms.graphs}, bound {terms.bound}"
    )


def _single_request(
    configs: Mapping[str, ModelConfig], workloads: WorkloadFactory, runtimes: Mapping[str, Runtime]
) -> Predictor:
    def predict(point: PublishedPoint) -> Predicted:
        config = configs[point.model]
        workload = workloads(point)
        timer = _timer(point, config, workload, runtimes)
        prompt = _prompt(point, workload)
        output = point.output_tokens or 2
        times = timer.request_times(
            prompt_tokens=prompt, max_new_tokens=output, vision_key="" if point.text_only else "page"
        )
        if point.metric == "ttft_ms":
            terms = timer.prefill_terms(tokens=prompt)
            drivers = (
                f"request overhead {timer.runtime.request_overhead_s * 1e3:.1f} ms + vision "
                f"{times.vision_s * 1e3:.2f} ms + prefill {times.prefill_s * 1e3:.2f} ms "
                f"({terms.kernels:.0f} kernels, host per prefill {timer.runtime.prefill_host_s * 1e3:.1f} ms, "
                f"launch {terms.launch_s * 1e3:.2f} ms, roofline "
                f"{terms.roofline_s * 1e3:.2f} ms, bound {terms.bound})"
            )
            return Predicted(value=times.ttft_s * 1e3, drivers=drivers)
        if point.metric == "tpot_ms":
            mid = prompt + output // 2
            return Predicted(value=times.tpot_s * 1e3, drivers=_decode_facts(timer, (mid,)))
        if point.metric == "e2e_ms":
            value = times.ttft_s + times.tpot_s * max(output - 1, 0)
            return Predicted(value=value * 1e3, drivers="TTFT + (N-1) x TPOT")
        raise UserError(f"published point {point.point_id}: no single-request prediction for {point.metric}")

    return predict


def steady_state_serving(
    *, timer: RuntimeIterationTimer, C: int, S: int, N: int, vision_key: str = ""
) -> tuple[float, float]:
    """``(output tokens/s, pages/s)`` of ``C`` requests in flight, each a prefill of ``S`` tokens then ``N - 1``
    decode steps, in steady state.

    ``T = (N - 1) * t_decode(C sequences at context S + N/2) + C * t_prefill(S)``; tokens/s = ``C N / T``,
    requests/s = ``C / T``.  Source: a closed-loop continuous batch where every sequence advances once per decode
    iteration and each request's prefill costs what it costs alone.  Left out: queueing, the ramp at start and end,
    prefills batched together or chunked into decode iterations (cheaper weight reads), preemption, the mean number
    in flight being below ``C`` - the serving simulator models these.
    """
    pages = 1 if vision_key else 0
    decode = timer.iteration_s(BatchComposition(decode_context=(S + N // 2,) * C))
    prefill = timer.iteration_s(
        BatchComposition(prefill=(PrefillChunk(new_tokens=S, vision_pages=pages, vision_key=vision_key),))
    )
    total = max(N - 1, 0) * decode + C * prefill
    return C * N / total, C / total


def _serving(
    configs: Mapping[str, ModelConfig], workloads: WorkloadFactory, runtimes: Mapping[str, Runtime]
) -> Predictor:
    def predict(point: PublishedPoint) -> Predicted:
        if point.concurrency is None or point.output_tokens is None:
            raise UserError(f"published point {point.point_id}: a serving point needs concurrency and output_tokens")
        workload = workloads(point)
        timer = _timer(point, configs[point.model], workload, runtimes)
        prompt = _prompt(point, workload)
        c, n = point.concurrency, point.output_tokens
        tokens_s, pages_s = steady_state_serving(
            timer=timer, C=c, S=prompt, N=n, vision_key="" if point.text_only else "page"
        )
        values = {
            "output_tokens_per_s": tokens_s,
            "pages_per_s": pages_s,
            "pages_per_day": pages_s * 86400.0,
        }
        if point.metric not in values:
            raise UserError(f"published point {point.point_id}: the steady-state estimate has no {point.metric}")
        facts = _decode_facts(timer, (prompt + n // 2,) * c)
        return Predicted(
            value=values[point.metric], drivers=f"steady state, C={c}, S={prompt}, N={n}; decode step: {facts}"
        )

    return predict


def default_predictors(
    configs: Mapping[str, ModelConfig], workloads: WorkloadFactory, *, runtimes: Mapping[str, Runtime] | None = None
) -> dict[str, Predictor]:
    """The built-in predictor per kind (``configs``: model id -> config; ``workloads``: a point's page workload;
    ``runtimes``: variants to use instead of the catalog's, by runtime id, e.g. to show what one rule changes)."""
    chosen = runtimes or {}
    return {
        "single-request": _single_request(configs, workloads, chosen),
        "serving": _serving(configs, workloads, chosen),
    }


def validate(sources: Sequence[PublishedSource], predictors: Mapping[str, Predictor]) -> list[PointResult]:
    """Every point of ``sources`` with its prediction (None where no predictor takes its kind), in file order."""
    results: list[PointResult] = []
    for src in sources:
        for point in src.points:
            get_runtime(point.runtime)
            predictor = predictors.get(point.kind)
            if predictor is None:
                results.append(
                    PointResult(point=point, source=src.source, predicted=None, drivers=f"no {point.kind} predictor")
                )
                continue
            got = predictor(point)
            results.append(
                PointResult(
                    point=point,
                    source=src.source,
                    predicted=got.value,
                    drivers=got.drivers,
                    error=got.value / point.value - 1.0,
                )
            )
    return results


def point_workload(point: PublishedPoint) -> WorkloadLike:
    """The page workload of ``point``: its mode and page (text-only points: the model's default page, used only to
    probe the decoder), its output length, the default 9-token text prompt after the image."""
    output = max(point.output_tokens or 2, 2)
    if point.model == "deepseek-ocr-2":
        mode = "single" if point.text_only else point.mode
        return Ocr2Workload.create(mode=mode, page=point.page or (1024, 1024), max_new_tokens=output)
    mode = "base" if point.text_only else point.mode
    return Workload.create(mode=mode, page=point.page or (1024, 1024), max_new_tokens=output)
