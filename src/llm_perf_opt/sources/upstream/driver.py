"""Drive upstream v1 remote code directly: one prefill pass, then decode steps (``generate()`` cannot run on meta).

Inputs follow upstream's own calling convention (``infer`` -> ``generate``, model-facts §3.1): ``images`` is a list of
``(crops, global_view)`` per batch row, with a dummy all-zero ``[1, 3, base, base]`` crop tensor when the workload
has no crops; ``images_seq_mask`` marks the image tokens.  ``images_spatial_crop`` goes in as host ``(cols, rows)``
integers rather than upstream's CPU LongTensor: upstream only reads the two numbers, and CPU-scalar tensor arithmetic
is host work, not GPU kernels (a tensor would put host ops into the trace).  Upstream's ``print`` calls go to stderr.
Token ids, masks and pixel shapes are those of the built-in input builder for the same workload, so the two sources
see identical inputs.  Decode step ``i`` feeds one token with a cache already holding
``S + i - 1`` positions (filled outside the counter), like the built-in driver.  Every pass runs inside
:meth:`AdapterSet.active`, with the presence answers taken from the workload.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import torch
from torch import Tensor, nn

from llm_perf_opt.core.driving import InputsDriver, PassInputs
from llm_perf_opt.errors import TraceError
from llm_perf_opt.sources.deepseek_ocr_v1.cache import KVCache, cache_pass, decode_pass
from llm_perf_opt.sources.deepseek_ocr_v1.inputs import WorkloadInputs
from llm_perf_opt.sources.deepseek_ocr_v1.moe import ExpertRouting
from llm_perf_opt.sources.upstream.adapters import AdapterSet, Presence, UnadaptedSpotError
from llm_perf_opt.sources.upstream.cache import cache_adapter

__all__ = ["UpstreamDriver"]


class UpstreamDriver(InputsDriver):
    """The tracer's :class:`~llm_perf_opt.core.driving.Driver` for a v1-family remote-code model."""

    def __init__(
        self, model: nn.Module, inputs: WorkloadInputs, routing: ExpertRouting, adapters: AdapterSet, *, base_size: int
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.routing = routing
        self.adapters = adapters
        self.base_size = base_size
        self.kv_appends = [0]

    def _views(self) -> tuple[list[tuple[Tensor, Tensor]], dict[int, Presence], list[Tensor]]:
        """Upstream ``images``, the presence answer for each view tensor, and the view tensors (live inputs)."""
        images: list[tuple[Tensor, Tensor]] = []
        answers: dict[int, Presence] = {}
        for views in self.inputs.prefill.images:
            glob = views.global_view
            crops = views.crops
            if crops is None:
                crops = torch.zeros((1, 3, self.base_size, self.base_size), dtype=glob.dtype, device=glob.device)
            answers[id(glob)] = Presence(True, glob.new_empty(()))
            answers[id(crops)] = Presence(views.crops is not None, crops.new_empty(()))
            images.append((crops, glob))
        return images, answers, [t for pair in images for t in pair]

    def prefill(self) -> PassInputs:
        prefill = self.inputs.prefill
        kv = self._new_cache()
        images, answers, views = self._views()
        spatial = [tuple(int(n) for n in grid) for grid in prefill.image_grid]  # host ints, see module docstring
        kwargs: dict[str, Any] = {
            "input_ids": prefill.input_ids,
            "images": images,
            "images_seq_mask": prefill.images_seq_mask,
            "images_spatial_crop": spatial,
            "position_ids": prefill.position_ids,
        }
        cache = cache_adapter(kv, self.kv_appends)
        live = [prefill.input_ids, prefill.images_seq_mask, prefill.position_ids, *views]
        return cache_pass(kv, run=lambda: self._run(kwargs, cache, answers), live=live)

    def _new_cache(self) -> KVCache:
        """Room for one position more than the workload needs, as the built-in driver allocates: a view of the filled
        prefix is then never the whole buffer (a full-range slice is an alias op, a partial one a slice op)."""
        full = self.inputs.new_cache()
        key = full.keys[0]
        return KVCache(
            num_layers=full.num_layers,
            batch_size=key.shape[0],
            num_kv_heads=key.shape[1],
            head_dim=key.shape[3],
            max_len=full.max_len + 1,
            dtype=key.dtype,
            device=key.device,
        )

    def step(self, i: int) -> PassInputs:
        kv = self._new_cache()
        step = self.inputs.decode_step(i)
        kwargs = {"input_ids": step.input_ids, "position_ids": step.position_ids}
        cache = cache_adapter(kv, self.kv_appends)
        live = [step.input_ids, step.position_ids]
        return decode_pass(kv, cached=self.inputs.seq_len + i - 1, run=lambda: self._run(kwargs, cache, {}), live=live)

    def _run(self, kwargs: dict[str, Any], cache: Any, answers: dict[int, Presence]) -> Any:
        with self.adapters.active(answers=answers, routing=self.routing), contextlib.redirect_stdout(sys.stderr):
            try:
                out = self.model(**kwargs, past_key_values=cache, use_cache=True, return_dict=True)
            except (RuntimeError, NotImplementedError, AssertionError) as exc:
                raise _unadapted(exc) from exc
        logits = out.logits if hasattr(out, "logits") else out[0]
        return logits


def _unadapted(exc: BaseException) -> TraceError:
    """Name the upstream line a meta-incompatible operation came from."""
    where = "?"
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith("transformers_modules."):
            where = (
                f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
            )
        tb = tb.tb_next
    return UnadaptedSpotError(
        f"upstream code failed on the meta device at {where} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
        "no meta adapter covers this spot"
    )
