"""Iteration times cached by composition signature: what makes ten thousand simulated requests take a second.

Decode iterations differ from one another mostly in their context lengths and batch size; :class:`CachedTimer`
rounds those to a signature and asks the runtime's :class:`~llm_perf_opt.perf.iteration.IterationTimer` once per
signature.
"""

from __future__ import annotations

from llm_perf_opt.perf.iteration import BatchComposition, IterationTimer, PrefillChunk

__all__ = ["EXACT_BATCH", "CachedTimer"]

EXACT_BATCH = 32
"""Decode batches up to this size are timed exactly; larger ones interpolate between grid sizes (see CachedTimer)."""


def _batch_grid(n: int) -> tuple[int, int]:
    """The grid sizes around ``n > EXACT_BATCH``: four per doubling (32, 40, 48, 56, 64, 80, ...)."""
    step = max(1, 1 << max(0, n.bit_length() - 3))
    low = n // step * step
    return low, low if low == n else low + step


def _round_chunk(new: int, q: int) -> int:
    """A prefill chunk's size in the cache key: exact below ``q`` tokens (where the experts a chunk touches grow
    fastest with its size), else rounded to a multiple of ``q``."""
    return new if new < q else round(new / q) * q


class CachedTimer:
    """An :class:`IterationTimer` behind a cache keyed by the iteration's composition signature.

    Decode contexts enter the key as their mean rounded to ``context_quantum`` tokens (the composition handed to the
    timer gives every sequence that mean); prefill chunk sizes and their cached prefixes are rounded to
    ``context_quantum`` tokens (chunks shorter than that stay exact: a 10-token prompt rounded to 1 token hit 6
    experts instead of about 40, and cost one decode step). Decode batches above :data:`EXACT_BATCH` sequences
    interpolate linearly between the two grid sizes around them (four per doubling: at most 12.5% apart), with the same
    mean context and prefill chunks: an iteration's cost is smooth in the batch there (every expert is already read).
    ``context_quantum = 1`` is exact throughout (no rounding, no interpolation).
    """

    def __init__(self, timer: IterationTimer, *, context_quantum: int = 64) -> None:
        if context_quantum < 1:
            raise ValueError(f"context_quantum must be >= 1, got {context_quantum}")
        self.timer = timer
        self.quantum = context_quantum
        self.cache: dict[tuple[object, ...], float] = {}
        self.calls = 0

    def seconds(self, n_decode: int, keys_total: int, prefill: tuple[tuple[int, int, int, str], ...] = ()) -> float:
        """Seconds of one iteration: ``n_decode`` one-token steps attending ``keys_total`` keys together, beside
        prefill chunks ``(new_tokens, cached_tokens, vision_pages, vision_key)``."""
        q = self.quantum
        if q == 1:
            return self._time(n_decode, keys_total, prefill)
        chunks = tuple((_round_chunk(new, q), round(cached / q) * q, p, k) for new, cached, p, k in prefill)
        mean = max(1, round(keys_total / (n_decode * q)) * q) if n_decode else 0
        if n_decode <= EXACT_BATCH:
            return self._time(n_decode, mean * n_decode, chunks)
        low, high = _batch_grid(n_decode)
        t_low = self._time(low, mean * low, chunks)
        if high == low:
            return t_low
        t_high = self._time(high, mean * high, chunks)
        return t_low + (t_high - t_low) * (n_decode - low) / (high - low)

    def _time(self, n: int, total: int, chunks: tuple[tuple[int, int, int, str], ...]) -> float:
        sig = (n, total, chunks)
        found = self.cache.get(sig)
        if found is None:
            base, extra = divmod(total, n) if n else (0, 0)
            batch = BatchComposition(
                prefill=tuple(
                    PrefillChunk(new_tokens=new, cached_tokens=cached, vision_pages=pages, vision_key=key)
                    for new, cached, pages, key in chunks
                ),
                decode_context=(base + 1,) * extra + (base,) * (n - extra),
            )
            found = self.cache[sig] = float(self.timer.iteration_s(batch))
            self.calls += 1
            if not found >= 0.0:
                raise ValueError(f"the iteration timer returned {found} s for {batch}")
        return found
