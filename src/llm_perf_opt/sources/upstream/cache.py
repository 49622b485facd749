"""A transformers ``Cache`` backed by the built-in preallocated :class:`KVCache`, handed to upstream code.

Upstream v1 grows a ``DynamicCache`` by ``torch.cat`` every step (model-facts §3.4).  Traced with this cache instead, an
append writes the new positions only (the project's KV convention) and the tracer recognises the KV buffers, so
KV reads and writes are counted as such; reports list it as the ``kv-cache-preallocated`` adapter.  It subclasses
transformers' ``Cache`` where that class can be built without arguments (4.46.x: upstream checks ``isinstance``).
"""

from __future__ import annotations

import functools
from typing import Any

from torch import Tensor

from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache
from llm_perf_opt.sources.upstream.records import AdapterRecord

__all__ = ["KV_CACHE_RECORD", "cache_adapter"]

KV_CACHE_RECORD = AdapterRecord(
    kind="kv-cache-preallocated",
    target="transformers.cache_utils.DynamicCache",
    description="a preallocated KV cache (append writes the new positions only) in place of DynamicCache's "
    "torch.cat growth",
    reviewed_as="calling convention: past_key_values=Cache",
)


class _CacheMethods:
    """The cache calls upstream code makes (4.46-era names)."""

    kv: KVCache
    counter: list[int]

    def update(
        self, key_states: Tensor, value_states: Tensor, layer_idx: int, cache_kwargs: Any = None
    ) -> tuple[Tensor, Tensor]:
        self.counter[0] += 1
        return self.kv.update(layer_idx, key_states, value_states)

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return self.kv.seq_length(layer_idx or 0)

    def get_usable_length(self, new_seq_length: int, layer_idx: int | None = 0) -> int:
        return self.kv.seq_length(layer_idx or 0)

    def get_max_length(self) -> int | None:
        return None

    def get_max_cache_shape(self) -> int | None:
        return None

    def __len__(self) -> int:
        return sum(1 for layer in range(self.kv.num_layers) if self.kv.seq_length(layer))


@functools.cache
def _cache_class() -> type:
    base = _transformers_cache()
    bases: tuple[type, ...] = (_CacheMethods,) if base is None else (_CacheMethods, base)
    return type("PreallocatedCache", bases, {})


def _transformers_cache() -> type | None:
    """transformers' ``Cache`` if it can be built without arguments (4.46.x); None otherwise (5.x, or absent)."""
    try:
        # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
        from transformers.cache_utils import Cache
    except ImportError:
        return None
    try:
        Cache()
    except (TypeError, ValueError):
        return None
    cache_type: type = Cache
    return cache_type


def cache_adapter(kv: KVCache, counter: list[int] | None = None) -> Any:
    """A transformers-compatible cache object writing into ``kv``; ``counter[0]`` counts its appends."""
    cls = _cache_class()
    cache = cls()
    cache.kv = kv
    cache.counter = counter if counter is not None else [0]
    return cache
