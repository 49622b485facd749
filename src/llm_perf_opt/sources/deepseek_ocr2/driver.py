"""Drive DeepSeek-OCR-2 on meta: one prefill pass and decode steps, with the meta workarounds scoped to each pass.

Inputs follow transformers' processor output: ``input_ids`` (BOS, ``N_img`` image tokens, prompt), ``pixel_values``
``[B, 3, G, G]``, ``pixel_values_local`` ``[B*n, 3, 768, 768]`` (absent without tiles), ``num_local_patches`` as host
ints.  While a pass runs: the experts see the routing model (:func:`routing_scope`), the KV cache is transformers'
``DynamicCache`` whose layers write into a preallocated buffer (an append writes the new positions only, as for v1),
and the placeholder-count check (``torch_compilable_check`` on a meta tensor: a host read) is skipped; the count it
checks is the workload's ``N_img``, which the inputs are built from.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import Tensor, nn

from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.sources.deepseek_ocr2.build import experts_layers
from llm_perf_opt.sources.deepseek_ocr2.experts import routing_scope
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache, cache_pass, decode_pass
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["Ocr2Driver", "preallocated_cache"]

_TEXT_BASE = 3  # placeholder text ids (0 BOS, 1 EOS, 2 pad)


@functools.cache
def _layer_class() -> type:
    # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
    from transformers.cache_utils import DynamicLayer

    base: Any = DynamicLayer

    class PreallocatedLayer(base):  # type: ignore[misc]
        """A ``DynamicLayer`` whose storage is one layer of a :class:`KVCache` (slice writes, prefix views)."""

        def __init__(self, kv: KVCache, layer_idx: int, appends: list[int]) -> None:
            super().__init__()
            self.kv = kv
            self.layer_idx = layer_idx
            self.appends = appends

        def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
            self.device = key_states.device
            self.is_initialized = True

        def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            self.appends[0] += 1
            self.keys, self.values = self.kv.update(self.layer_idx, key_states, value_states)
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.kv.seq_length(self.layer_idx)

    return PreallocatedLayer


def preallocated_cache(text_config: Any, kv: KVCache, appends: list[int] | None = None) -> Any:
    """transformers' ``DynamicCache`` for ``text_config``, every layer writing into ``kv`` (``appends[0]`` counts)."""
    # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
    from transformers.cache_utils import DynamicCache

    cache = DynamicCache(config=text_config)
    layer = _layer_class()
    counter = appends if appends is not None else [0]
    cache.layers = [layer(kv, i, counter) for i in range(kv.num_layers)]
    return cache


class _CheckCounter:
    def __init__(self) -> None:
        self.skipped = 0


@contextlib.contextmanager
def _placeholder_check_skipped(counter: _CheckCounter) -> Iterator[None]:
    # lazy: transformers is optional (the [hf] extra) and heavy; loaded only when this runs
    from transformers.models.deepseek_ocr2 import modeling_deepseek_ocr2

    modeling: Any = modeling_deepseek_ocr2
    original = modeling.torch_compilable_check

    def check(cond: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(cond, Tensor) and cond.is_meta:
            counter.skipped += 1
            return None
        return original(cond, *args, **kwargs)

    modeling.torch_compilable_check = check
    try:
        yield
    finally:
        modeling.torch_compilable_check = original


class Ocr2Driver:
    """The tracer's driver for transformers' ``DeepseekOcr2ForConditionalGeneration`` on meta."""

    def __init__(self, model: nn.Module, workload: Ocr2Workload, routing: ExpertRouting) -> None:
        self.model = model
        self.workload = workload
        self.routing = routing
        self.layers = experts_layers(model)
        self.config: Any = cast(Any, model).config
        self.text_config: Any = self.config.text_config
        self.dtype = next(model.parameters()).dtype
        self.checks = _CheckCounter()
        self.expert_calls = [0]
        self.kv_appends = [0]

    @property
    def decode_steps(self) -> int:
        return self.workload.decode_steps

    @property
    def seq_len(self) -> int:
        """Prefill length S of the driven (OCR-2) workload."""
        return self.workload.seq_len

    @property
    def max_new_tokens(self) -> int:
        return self.workload.max_new_tokens

    def describe(self) -> str:
        return self.workload.describe()

    def _new_cache(self) -> KVCache:
        text, work = self.text_config, self.workload
        return KVCache(
            num_layers=text.num_hidden_layers,
            batch_size=work.batch_size,
            num_kv_heads=text.num_key_value_heads,
            head_dim=text.head_dim,
            max_len=work.seq_len + work.decode_steps + 1,  # one spare position, as the built-in driver
            dtype=self.dtype,
            device="meta",
        )

    def _prompt(self) -> Tensor:
        """The prompt's token ids, ``[B, S]`` on meta: BOS, the image tokens, the prompt (a meta tensor holds no
        values, so none are built on the host)."""
        work = self.workload
        return torch.empty((work.batch_size, work.seq_len), dtype=torch.long, device="meta")

    def prefill(self) -> PassInputs:
        work = self.workload
        kv = self._new_cache()
        cache = preallocated_cache(self.text_config, kv, self.kv_appends)
        ids = self._prompt()
        positions = torch.arange(work.seq_len, device="meta").expand(work.batch_size, -1)
        side = work.global_view_size
        pixels = torch.empty((work.batch_size, 3, side, side), device="meta", dtype=self.dtype)
        kwargs: dict[str, Any] = {"input_ids": ids, "pixel_values": pixels, "position_ids": positions}
        live = [ids, positions, pixels]
        if work.num_crops:
            tile = work.crop_size
            local = torch.empty((work.batch_size * work.num_crops, 3, tile, tile), device="meta", dtype=self.dtype)
            kwargs |= {"pixel_values_local": local, "num_local_patches": [work.num_crops] * work.batch_size}
            live.append(local)
        return cache_pass(kv, run=lambda: self._run(kwargs, cache), live=live)

    def step(self, i: int) -> PassInputs:
        work = self.workload
        kv = self._new_cache()
        cached = work.seq_len + i - 1
        cache = preallocated_cache(self.text_config, kv, self.kv_appends)
        ids = torch.full((work.batch_size, 1), _TEXT_BASE, dtype=torch.long, device="meta")
        positions = torch.full((work.batch_size, 1), cached, dtype=torch.long, device="meta")
        kwargs = {"input_ids": ids, "position_ids": positions}
        return decode_pass(kv, cached=cached, run=lambda: self._run(kwargs, cache), live=[ids, positions])

    def _run(self, kwargs: dict[str, Any], cache: Any) -> Any:
        with routing_scope(self.routing, self.layers, self.expert_calls), _placeholder_check_skipped(self.checks):
            out = self.model(**kwargs, cache=cache, use_cache=True)
        return out.logits
