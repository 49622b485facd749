"""The scheduler loop against closed forms: one request alone, a decode-only batch, Little's law, preemption, seeds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.perf.iteration import BatchComposition, IterationTimer, PrefillChunk
from llm_perf_opt.serving.cache import CachedTimer
from llm_perf_opt.serving.engine import Load, SimulationRun, run_engine
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix
from llm_perf_opt.serving.settings import SchedulerSettings

Timers = Callable[[], Any]
"""The ``linear_timer`` fixture: a fresh closed-form timer per call (tests/serving/conftest.py)."""

VLLM = SchedulerSettings(
    runtime="vllm", max_num_seqs=256, max_num_batched_tokens=8192, block_size=16, memory_fraction=0.9
)
PAGES = RequestMix.pages(mode="base", page=(1024, 1024), output_tokens=50)  # S = 1 + 273 + 9 = 283 (model-facts §3.5)


def _run(
    timer: IterationTimer,
    mix: RequestMix,
    load: Load,
    settings: SchedulerSettings = VLLM,
    blocks: int = 100_000,
    seed: int = 0,
    quantum: int = 1,
) -> SimulationRun:
    cached = CachedTimer(timer, context_quantum=quantum)
    return run_engine(mix=mix, load=load, timer=cached, settings=settings, kv_blocks=blocks, seed=seed)


def test_one_request_alone_is_the_single_request_timeline(linear_timer: Timers) -> None:
    run = _run(linear_timer(), PAGES, Load(requests=1, concurrency=1))
    timer, S, N = linear_timer(), 283, 50
    assert PAGES.image_tokens == 273
    prefill = timer.iteration_s(
        BatchComposition(prefill=(PrefillChunk(new_tokens=S, vision_pages=1, vision_key="base:1024x1024"),))
    )
    decode = [timer.iteration_s(BatchComposition(decode_context=(S + i,))) for i in range(1, N)]
    (rec,) = run.records
    assert rec.first_token_s == pytest.approx(prefill, rel=1e-12)
    assert rec.finish_s == pytest.approx(prefill + sum(decode), rel=1e-12)
    assert run.iterations == N  # one prefill, N - 1 decode steps
    assert run.min_free_blocks == 100_000 - math.ceil((S + N - 1) / 16)


def test_chunked_prefill_splits_the_prompt_and_runs_vision_once(linear_timer: Timers) -> None:
    settings = evolve(VLLM, max_num_batched_tokens=100)
    timer = linear_timer()
    run = _run(timer, PAGES, Load(requests=1, concurrency=1), settings=settings)
    chunks = [b.prefill[0] for b in timer.seen if b.prefill]
    assert [c.new_tokens for c in chunks] == [100, 100, 83]
    assert [c.cached_tokens for c in chunks] == [0, 100, 200]
    assert [c.vision_pages for c in chunks] == [1, 0, 0]  # the encoder runs where the prefill starts
    assert run.iterations == 3 + 49


def test_decode_only_batch_of_c_requests_gives_c_tokens_per_step(linear_timer: Timers) -> None:
    C, S, N = 8, 283, 50
    timer = linear_timer()
    run = _run(timer, PAGES, Load(requests=C, concurrency=C))
    first = timer.iteration_s(BatchComposition(prefill=(PrefillChunk(new_tokens=S, vision_pages=1),) * C))
    steps = [timer.iteration_s(BatchComposition(decode_context=(S + i,) * C)) for i in range(1, N)]
    assert all(r.first_token_s == pytest.approx(first) for r in run.records)  # all prefill in one iteration
    assert all(r.finish_s == pytest.approx(first + sum(steps)) for r in run.records)
    decode_rate = C * (N - 1) / sum(steps)  # C tokens per step time
    measured = sum(r.output_tokens - 1 for r in run.records) / (run.makespan_s - first)
    assert measured == pytest.approx(decode_rate, rel=1e-12)


def test_littles_law_on_an_open_loop_run(linear_timer: Timers) -> None:
    mix = evolve(PAGES, output_tokens=LengthDistribution(values=(20, 50, 200)))
    run = _run(linear_timer(), mix, Load(requests=3000, rate=4.0), seed=3, quantum=16)
    e2e = [r.finish_s - r.arrival_s for r in run.records]
    assert run.in_system_area == pytest.approx(sum(e2e), rel=1e-9)  # the engine's own occupancy integral
    in_system = run.in_system_area / run.makespan_s
    assert in_system == pytest.approx(4.0 * sum(e2e) / len(e2e), rel=0.05)  # L = lambda W at the offered rate


def test_kv_exhaustion_preempts_and_never_goes_negative(linear_timer: Timers) -> None:
    mix = evolve(PAGES, output_tokens=400)
    blocks = 150  # 2,400 tokens: fewer than 8 requests of 283 + 400 tokens
    run = _run(linear_timer(), mix, Load(requests=24, concurrency=8), blocks=blocks)
    assert run.preemptions > 0
    assert 0 <= run.min_free_blocks <= blocks
    assert all(0 <= s.kv_blocks_used <= blocks for s in run.timeline)
    assert len(run.records) == 24 and all(r.output_tokens == 400 for r in run.records)
    preempted = [r for r in run.records if r.preemptions]
    assert preempted
    assert run.vision_runs == 24 + run.preemptions  # recompute runs the encoder again


def test_a_seed_reproduces_a_run_and_another_seed_differs(linear_timer: Timers) -> None:
    mix = evolve(
        PAGES, output_tokens=LengthDistribution(values=(30, 60, 90, 400)), repetition_share=0.05, max_model_len=1000
    )
    a = _run(linear_timer(), mix, Load(requests=300, rate=3.0), seed=7, quantum=16)
    b = _run(linear_timer(), mix, Load(requests=300, rate=3.0), seed=7, quantum=16)
    c = _run(linear_timer(), mix, Load(requests=300, rate=3.0), seed=8, quantum=16)
    assert a == b
    assert a.records != c.records
    assert any(r.looped and r.output_tokens == 1000 - 283 for r in a.records)


def test_sglang_runs_prefill_and_decode_as_separate_batches(linear_timer: Timers) -> None:
    sglang = evolve(VLLM, runtime="sglang", block_size=1, mixed_batches=False, admission_reserve_ratio=0.7)
    timer = linear_timer()
    run = _run(timer, PAGES, Load(requests=40, concurrency=10), settings=sglang, blocks=1_000_000)
    assert not any(b.prefill and b.decode_context for b in timer.seen)
    assert len(run.records) == 40


def test_static_batches_start_only_when_the_last_one_ends(linear_timer: Timers) -> None:
    hf = SchedulerSettings(
        runtime="hf-eager",
        max_num_seqs=4,
        max_num_batched_tokens=1 << 30,
        block_size=1,
        memory_fraction=1.0,
        mixed_batches=False,
        static_batching=True,
    )
    mix = evolve(PAGES, output_tokens=LengthDistribution(values=(10, 40)))
    timer = linear_timer()
    run = _run(timer, mix, Load(requests=12, concurrency=12), settings=hf)
    assert max(len(b.prefill) for b in timer.seen) == 4 and not any(b.prefill and b.decode_context for b in timer.seen)
    firsts = sorted({round(r.first_token_s, 9) for r in run.records})
    finishes = sorted(r.finish_s for r in run.records)
    assert len(firsts) == 3 and firsts[1] >= finishes[3] - 1e-9 and firsts[2] >= finishes[7] - 1e-9


def test_max_num_seqs_caps_the_batch(linear_timer: Timers) -> None:
    timer = linear_timer()
    run = _run(timer, PAGES, Load(requests=50, concurrency=50), settings=evolve(VLLM, max_num_seqs=5))
    assert max(s.running for s in run.timeline) == 5
    assert max(len(b.decode_context) for b in timer.seen) <= 5


def test_a_request_that_cannot_start_is_one_error(linear_timer: Timers) -> None:
    from llm_perf_opt.errors import UserError

    with pytest.raises(UserError, match="can never start"):
        _run(linear_timer(), PAGES, Load(requests=1, concurrency=1), blocks=2)


def test_sglang_under_kv_pressure_admits_within_its_reserve_or_retracts(linear_timer: Timers) -> None:
    sglang = evolve(VLLM, runtime="sglang", block_size=1, mixed_batches=False, admission_reserve_ratio=0.7)
    mix = evolve(PAGES, output_tokens=LengthDistribution(values=(100, 600)))
    load = Load(requests=40, concurrency=12)
    reserved = _run(linear_timer(), mix, load, settings=sglang, blocks=3000, quantum=16)
    assert len(reserved.records) == 40 and reserved.preemptions == 0  # the reserve keeps admissions safe
    assert max(s.running for s in reserved.timeline) < 12
    bare = _run(linear_timer(), mix, load, settings=evolve(sglang, admission_reserve_ratio=0.0), blocks=3000)
    assert len(bare.records) == 40 and bare.preemptions > 0 and bare.min_free_blocks >= 0
    assert all(0 <= s.kv_blocks_used <= 3000 for s in bare.timeline)
