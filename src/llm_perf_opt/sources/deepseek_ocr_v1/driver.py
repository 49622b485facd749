"""The driver of the built-in DeepSeek-OCR v1 tree (and any tree with its forward and ``new_cache``).

Prefill with the workload's images; decode step ``i`` with a cache pre-filled (outside the counter) to
``S + i - 1`` positions.  The tracer runs it (:class:`~llm_perf_opt.core.driving.Driver`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from llm_perf_opt.core.driving import InputsDriver, PassInputs
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache, cache_pass, decode_pass
from llm_perf_opt.sources.deepseek_ocr_v1.inputs import WorkloadInputs
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting

__all__ = ["BuiltinDriver"]


class BuiltinDriver(InputsDriver):
    """Runs the built-in DeepSeek-OCR v1 tree: prefill with the workload's images, decode step ``i`` with a cache
    pre-filled (outside the counter) to ``S + i - 1`` positions."""

    def __init__(self, model: nn.Module, inputs: WorkloadInputs, routing: ExpertRouting) -> None:
        self.model: Any = model  # DeepseekOCRForCausalLM (or a tree with the same forward and new_cache)
        self.inputs = inputs
        self.routing = routing

    def _new_cache(self) -> KVCache:
        # one spare position: a view of the filled prefix is then never the whole buffer (torch skips a slice that
        # spans a whole dimension, which would make the last step's view count differ from the others')
        cache: KVCache = self.model.new_cache(batch_size=self.inputs.batch_size, max_len=self.inputs.cache_len + 1)
        return cache

    def prefill(self) -> PassInputs:
        return self._prefill(with_images=True)

    def language_prefill(self) -> PassInputs:
        """The prefill with the image rows left as their token embeddings: no vision encoder, projector or
        injection runs (on the meta device the language stages see the same shapes and the same live pixel
        inputs).  The tracer uses it at a large batch whose vision stages it extrapolates."""
        return self._prefill(with_images=False)

    def _prefill(self, *, with_images: bool) -> PassInputs:
        cache = self._new_cache()
        kwargs = self.inputs.prefill.kwargs()
        live = [kwargs["input_ids"], kwargs["images_seq_mask"], kwargs["position_ids"]]
        for views in self.inputs.prefill.images:
            live += [t for t in (views.crops, views.global_view) if t is not None]
        if not with_images:
            kwargs["images"] = None
        model, routing = self.model, self.routing
        return cache_pass(cache, run=lambda: model(**kwargs, past_key_values=cache, routing=routing), live=live)

    def step(self, i: int) -> PassInputs:
        cache = self._new_cache()
        kwargs = self.inputs.decode_step(i).kwargs()
        model, routing = self.model, self.routing
        return decode_pass(
            cache,
            cached=self.inputs.seq_len + i - 1,
            run=lambda: model(**kwargs, past_key_values=cache, routing=routing),
            live=[kwargs["input_ids"], kwargs["position_ids"]],
        )
