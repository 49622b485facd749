"""Iteration-level continuous batching: the scheduler loop of vLLM V1 / SGLang, timed by an :class:`IterationTimer`.

Each iteration the scheduler builds one :class:`~llm_perf_opt.perf.iteration.BatchComposition`:

1. Every decoding request advances one token (vLLM V1 schedules running requests first). Its KV grows by one slot; a
   new block is taken when the cache crosses a block boundary. When the free pool cannot cover the step, the most
   recently admitted running request is preempted (recompute: its blocks return to the pool, it goes back to the
   front of the queue and later prefills prompt + generated tokens again, vision encoder included).
2. Requests still in prefill continue with a chunk of at most the remaining token budget (``max_num_batched_tokens``)
   that fits the free blocks.
3. Waiting requests are admitted first come, first served while fewer than ``max_num_seqs`` run, the budget lasts,
   their first chunk's blocks fit and (vLLM) no request was preempted in this iteration. A page's vision encoder runs
   in the iteration that starts its prefill (the encoder budget per iteration is
   ``max(max_num_batched_tokens, image tokens)``, vLLM's ``max_num_encoder_input_tokens``).

SGLang runs prefill and decode as separate batches (prefill first while a request can be admitted) and admits only
while a reserve of future tokens per running request still fits; HF runtimes run static batches. Generation follows
the project's convention: prefill over ``S`` positions emits the first token, then ``N - 1`` one-token steps; step
``i`` attends over ``S + i`` keys; the cache ends at ``S + N - 1`` tokens.

Fast path: while nothing can be prefilled, iterations are decode-only and identical but for the context lengths, so
they run in a tight loop with O(1) work each (decoding requests advance in lockstep: a request's generated count is
the global decode counter minus its offset, its KV block boundary a phase of that counter). Iteration times are
cached by composition signature (decode count, summed context rounded to ``context_quantum`` tokens per sequence,
prefill chunks), so a timer is called a few thousand times for ten thousand requests.

Left out: prefix caching (off in upstream's DeepSeek-OCR recipe), speculative decoding, CPU swap, the detokenizer and
the HTTP front end, sampling cost beyond what the timer charges, pipelining of scheduling with execution.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable

from llm_perf_opt.errors import UserError
from llm_perf_opt.serving.cache import CachedTimer
from llm_perf_opt.serving.records import Load, RequestRecord, SimulationRun, TimelineSample
from llm_perf_opt.serving.requests import RequestMix
from llm_perf_opt.serving.settings import SchedulerSettings

__all__ = ["Load", "RequestRecord", "SimulationRun", "TimelineSample", "run_engine"]


class _Req:
    __slots__ = (
        "arrival",
        "blocks",
        "computed",
        "finish",
        "first",
        "g",
        "image",
        "key",
        "looped",
        "n_out",
        "off",
        "preempted",
        "prompt",
        "ready",
        "reserve",
        "rid",
        "state",
        "target",
        "vision_done",
    )

    def __init__(self, rid: int, arrival: float, prompt: int, n_out: int, image: int, key: str, looped: bool) -> None:
        self.rid, self.arrival, self.prompt, self.n_out = rid, arrival, prompt, n_out
        self.ready = arrival  # when the engine can first schedule it (arrival + per-request overhead)
        self.image, self.key, self.looped = image, key, looped
        self.g = 0  # tokens generated (materialised while not decoding)
        self.computed = 0  # prompt positions whose KV exists (prefill phase)
        self.target = prompt  # positions the current prefill must compute
        self.off = 0  # decoding: g = tick - off
        self.blocks = 0  # blocks held (prefill phase)
        self.reserve = 0  # SGLang admission reserve held
        self.state = 0  # 0 waiting, 1 prefill, 2 decode, 3 done
        self.first = -1.0
        self.finish = -1.0
        self.preempted = 0
        self.vision_done = False


def _blocks(tokens: int, bs: int) -> int:
    return -(-tokens // bs)


class _Engine:
    """One run's mutable state; :func:`run_engine` is the only way in."""

    def __init__(self, timer: CachedTimer, settings: SchedulerSettings, kv_blocks: int, image_tokens: int) -> None:
        self.timer, self.s = timer, settings
        self.encoder_budget = max(settings.max_num_batched_tokens, image_tokens)
        self.bs = settings.block_size
        self.total_blocks = kv_blocks
        self.used = 0
        self.min_free = kv_blocks
        self.clock = 0.0
        self.tick = 0  # global decode counter: decoding requests advance in lockstep
        self.dec_n = 0
        self.dec_a = 0  # sum over decoding requests of (prompt - off)
        self.cnt = [0] * self.bs  # decoding requests per block-boundary phase
        self.heap: list[tuple[int, int, _Req]] = []
        self.waiting: deque[_Req] = deque()
        self.running: dict[int, _Req] = {}
        self.prefilling: list[_Req] = []
        self.reserved = 0
        self.done: list[_Req] = []
        self.preemptions = 0
        self.vision_runs = 0
        self.iterations = 0
        self.area = 0.0
        self.running_area = 0.0
        self.timeline: list[TimelineSample] = []

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def free(self) -> int:
        return self.total_blocks - self.used

    def _take(self, n: int) -> None:
        self.used += n
        if self.used > self.total_blocks:
            raise AssertionError("KV pool over-committed")  # guarded by every caller; a bug if reached
        self.min_free = min(self.min_free, self.free)

    def _phase(self, r: _Req) -> int:
        return (r.off + 1 - r.prompt) % self.bs

    def _start_decode(self, r: _Req) -> None:
        r.state, r.off = 2, self.tick - r.g
        self.dec_n += 1
        self.dec_a += r.prompt - r.off
        self.cnt[self._phase(r)] += 1
        heapq.heappush(self.heap, (r.off + r.n_out, r.rid, r))

    def _stop_decode(self, r: _Req) -> int:
        """Leave the decode set; returns the blocks the request holds."""
        r.g = self.tick - r.off
        self.dec_n -= 1
        self.dec_a -= r.prompt - r.off
        self.cnt[self._phase(r)] -= 1
        return _blocks(r.prompt + r.g - 1, self.bs)

    def _release(self, r: _Req) -> None:
        held = self._stop_decode(r) if r.state == 2 else r.blocks
        if r.state == 1:
            self.prefilling.remove(r)
        self.used -= held
        self.reserved -= r.reserve
        r.blocks = r.reserve = 0
        del self.running[r.rid]

    def _preempt_tail(self) -> _Req:
        victim = self.running[next(reversed(self.running))]
        self._release(victim)
        victim.state, victim.computed, victim.target = 0, 0, victim.prompt + victim.g
        victim.vision_done = False
        victim.preempted += 1
        self.preemptions += 1
        self.waiting.appendleft(victim)
        return victim

    def _finish(self, r: _Req) -> None:
        self._release(r)
        r.state, r.finish = 3, self.clock
        self.done.append(r)

    def _emit(self, r: _Req) -> None:
        """Prefill of ``r`` completed in the iteration that just ended: one token comes out."""
        r.g += 1
        if r.first < 0:
            r.first = self.clock
        if r.g >= r.n_out:
            self._finish(r)
            return
        self.prefilling.remove(r)
        self.used -= r.blocks  # the decode set accounts blocks by phase from here on
        r.blocks = 0
        self._start_decode(r)
        self.used += _blocks(r.prompt + r.g - 1, self.bs)

    def _sample(self, batch_tokens: int) -> None:
        self.timeline.append(
            TimelineSample(
                time_s=self.clock,
                running=len(self.running),
                waiting=len(self.waiting),
                kv_blocks_used=self.used,
                batch_tokens=batch_tokens,
            )
        )

    def _advance(self, seconds: float) -> None:
        self.area += (len(self.running) + len(self.waiting)) * seconds
        self.running_area += len(self.running) * seconds
        self.clock += seconds

    # -- one scheduling decision ------------------------------------------------------------------
    def _reserve_for(self, r: _Req) -> int:
        ratio = self.s.admission_reserve_ratio
        if not ratio:
            return 0
        return _blocks(int(ratio * min(r.n_out - r.g, self.s.admission_reserve_clip)), self.bs)

    def _admissible(self, r: _Req, budget: int, encoder_left: int) -> tuple[int, int] | None:
        """``(chunk, blocks)`` for the first chunk of waiting request ``r``, or None if it cannot start now."""
        if len(self.running) >= self.s.max_num_seqs or budget <= 0 or r.ready > self.clock:
            return None
        if r.image and encoder_left < r.image:
            return None
        chunk = min(r.target, budget)
        need = _blocks(chunk, self.bs)
        if need + self._reserve_for(r) > self.free - self.reserved:
            return None
        return chunk, need

    def _decode_blocks_needed(self) -> int:
        return self.cnt[self.tick % self.bs] if self.dec_n else 0

    def can_prefill(self) -> bool:
        """True when an iteration now would run some prefill work."""
        if self.prefilling:
            return True
        if not self.waiting or (self.s.static_batching and self.running):
            return False
        first = self.waiting[0]
        return self._admissible(first, self.s.max_num_batched_tokens, self.encoder_budget) is not None

    def step(self, *, decode_only: bool = False) -> bool:
        """One iteration through the full scheduler (prefill work, preemption, admission); False if nothing ran.
        ``decode_only``: skip prefill work (a prefill batch that could place nothing)."""
        s = self.s
        budget = s.max_num_batched_tokens
        preempted = False
        prefill_only = not s.mixed_batches and not decode_only and self.can_prefill()
        decoding = self.dec_n > 0 and not prefill_only
        if decoding:
            while self._decode_blocks_needed() > self.free:
                self._preempt_tail()
                preempted = True
            decoding = self.dec_n > 0
        n_dec, keys = (self.dec_n, self.dec_a + self.dec_n * self.tick) if decoding else (0, 0)
        new_blocks = self._decode_blocks_needed() if decoding else 0
        self._take(new_blocks)
        budget -= n_dec
        encoder_left = self.encoder_budget
        chunks: list[tuple[_Req, int, bool]] = []
        if not decode_only and (s.mixed_batches or not decoding):
            for r in list(self.prefilling):
                if budget <= 0:
                    break
                chunk = min(r.target - r.computed, budget)
                fit = (self.free * self.bs) + (r.blocks * self.bs - r.computed)  # tokens the pool can still take
                chunk = min(chunk, fit)
                if chunk <= 0:
                    continue
                need = _blocks(r.computed + chunk, self.bs) - r.blocks
                self._take(need)
                r.blocks += need
                budget -= chunk
                chunks.append((r, chunk, False))
            admit = (not preempted or not s.mixed_batches) and not (s.static_batching and self.running)
            while admit and self.waiting:
                r = self.waiting[0]
                got = self._admissible(r, budget, encoder_left)
                if got is None:
                    break
                chunk, need = got
                self.waiting.popleft()
                self._take(need)
                r.blocks, r.state, r.reserve = need, 1, self._reserve_for(r)
                self.reserved += r.reserve
                self.running[r.rid] = r
                self.prefilling.append(r)
                budget -= chunk
                vision = r.image > 0 and not r.vision_done
                if vision:
                    encoder_left -= r.image
                    r.vision_done = True
                    self.vision_runs += 1
                chunks.append((r, chunk, vision))
        if not n_dec and not chunks:
            return False
        prefill = tuple((chunk, r.computed, int(vision), r.key if vision else "") for r, chunk, vision in chunks)
        self._sample(n_dec + sum(c for _, c, _ in chunks))
        self._advance(self.timer.seconds(n_dec, keys, prefill))
        self.iterations += 1
        if n_dec:
            self.tick += 1
            self._pop_finished()
        for r, chunk, _ in chunks:
            r.computed += chunk
            if r.computed >= r.target:
                self._emit(r)
        return True

    def idle_until(self, t: float) -> None:
        """Nothing runs until ``t`` (requests not yet ready still count as in the system)."""
        self.area += len(self.waiting) * (t - self.clock)
        self.clock = t

    def _pop_finished(self) -> None:
        heap = self.heap
        while heap and heap[0][0] <= self.tick:
            _, _, r = heapq.heappop(heap)
            if r.state == 2 and r.off + r.n_out == self.tick:
                self._finish(r)

    def decode_run(self, until_s: float) -> None:
        """Decode-only iterations while nothing can be prefilled, no one finishes and the blocks last."""
        heap, cnt, bs = self.heap, self.cnt, self.bs
        while heap and heap[0][2].state != 2:
            heapq.heappop(heap)  # lazily drop entries of preempted requests
        if not heap:
            return
        stop_d = heap[0][0]
        self._sample(self.dec_n)
        n = self.dec_n
        seconds = self.timer.seconds
        while self.tick < stop_d and self.clock < until_s:
            need = cnt[self.tick % bs]
            if need > self.total_blocks - self.used:
                break
            self.used += need
            t = seconds(n, self.dec_a + n * self.tick)
            self.area += (len(self.running) + len(self.waiting)) * t
            self.running_area += len(self.running) * t
            self.clock += t
            self.tick += 1
            self.iterations += 1
        self.min_free = min(self.min_free, self.free)
        self._pop_finished()


def run_engine(
    *,
    mix: RequestMix,
    load: Load,
    timer: CachedTimer,
    settings: SchedulerSettings,
    kv_blocks: int,
    seed: int = 0,
    request_overhead_s: float = 0.0,
    on_finish: Callable[[int], None] | None = None,
) -> SimulationRun:
    """Simulate ``load.requests`` requests of ``mix``; deterministic for ``seed`` (two ``random.Random`` streams:
    one draws the requests, one the Poisson gaps). A request reaches the scheduler ``request_overhead_s`` after it
    arrives (the runtime's per-request work outside the model: API, tokenizer, image preprocessing)."""
    eng = _Engine(timer, settings, kv_blocks, mix.image_tokens)
    draw_rng, gap_rng = random.Random(f"{seed}:requests"), random.Random(f"{seed}:arrivals")
    issued = 0
    draw = mix.sampler()

    def issue(at: float) -> None:
        nonlocal issued
        spec = draw(draw_rng)
        r = _Req(issued, at, spec.prompt_tokens, spec.output_tokens, spec.image_tokens, spec.vision_key, spec.looped)
        r.ready = at + request_overhead_s
        eng.waiting.append(r)
        eng.area += eng.clock - at  # it arrived during the iteration that just ended
        issued += 1

    next_arrival = float("inf")
    if load.concurrency is not None:
        for _ in range(min(load.concurrency, load.requests)):
            issue(0.0)
    else:
        assert load.rate is not None
        next_arrival = gap_rng.expovariate(load.rate)
    finished = 0
    while finished < load.requests:
        while load.rate is not None and issued < load.requests and next_arrival <= eng.clock:
            issue(next_arrival)
            next_arrival = next_arrival + gap_rng.expovariate(load.rate) if issued < load.requests else float("inf")
        head_ready = eng.waiting[0].ready if eng.waiting else float("inf")
        if not eng.running and (not eng.waiting or head_ready > eng.clock):
            if min(next_arrival, head_ready) == float("inf"):
                break
            eng.idle_until(min(next_arrival, head_ready))
            continue
        before, ran = len(eng.done), True
        if eng.dec_n and not eng.can_prefill():
            eng.decode_run(min(next_arrival, head_ready if head_ready > eng.clock else float("inf")))
            if len(eng.done) == before and eng.dec_n and not eng.can_prefill():
                ran = eng.step()  # blocks ran out or an arrival is due: the full scheduler decides
        else:
            ran = eng.step()
        if not ran and eng.dec_n:
            ran = eng.step(decode_only=True)  # SGLang: the prefill batch placed nothing, decode instead
        if not ran and eng.running:
            eng._preempt_tail()  # prefills hold every block and none can grow: make room for the oldest
        elif not ran:
            raise UserError(
                f"a request can never start: its first chunk needs more than the {kv_blocks} KV blocks "
                f"({kv_blocks * settings.block_size} tokens) the device has left; lower --max-num-batched-tokens, "
                "raise --gpu-memory-utilization or pick a device with more memory"
            )
        newly = len(eng.done) - before
        finished += newly
        if newly and load.concurrency is not None:
            for _ in range(min(newly, load.requests - issued)):
                issue(eng.clock)
        if on_finish is not None and newly:
            on_finish(finished)
    records = tuple(
        RequestRecord(
            arrival_s=r.arrival,
            first_token_s=r.first,
            finish_s=r.finish,
            prompt_tokens=r.prompt,
            output_tokens=r.n_out,
            image=r.image > 0,
            looped=r.looped,
            preemptions=r.preempted,
        )
        for r in sorted(eng.done, key=lambda q: q.rid)
    )
    return SimulationRun(
        records=records,
        timeline=tuple(eng.timeline),
        makespan_s=eng.clock,
        iterations=eng.iterations,
        preemptions=eng.preemptions,
        kv_blocks_total=kv_blocks,
        min_free_blocks=eng.min_free,
        timer_calls=timer.calls,
        vision_runs=eng.vision_runs,
        in_system_area=eng.area,
        running_area=eng.running_area,
    )
