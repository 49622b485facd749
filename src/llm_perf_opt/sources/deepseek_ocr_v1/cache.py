"""Preallocated key/value cache for the decoder.

Layout: per decoder layer one key and one value buffer, each ``[B, H_kv, L_max, D]`` in the model dtype, allocated
once (on any device, meta included).  Keys are stored **after** RoPE.  :meth:`KVCache.update` writes only the new
positions ``[L, L + q)`` of a layer with one slice copy per tensor (``buffer[:, :, L:L+q].copy_(new)``) and returns
views ``buffer[:, :, :L+q]`` of everything written so far; nothing is re-allocated or concatenated.

For the tracer: :meth:`KVCache.buffers` returns the underlying buffers; every tensor the cache hands out is a view
whose ``._base`` is one of them, so a KV read or write can be recognised by identity of the base tensor.
The fill level is host-side Python state (one int per layer), never read from tensor data.  :func:`cache_pass` and
:func:`decode_pass` make the tracer's pass of a driver over such a cache (every driver's prefill and decode step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from llm_perf_opt.core.driving import PassInputs
from llm_perf_opt.errors import TraceError

__all__ = ["KVCache", "cache_pass", "decode_pass"]


class KVCache:
    """Key/value buffers ``[B, H_kv, L_max, D]`` per layer with an append that writes the new positions only."""

    def __init__(
        self,
        *,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int,
        head_dim: int,
        max_len: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        shape = (batch_size, num_kv_heads, max_len, head_dim)
        self.max_len = max_len
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self._lengths = [0] * num_layers

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    def seq_length(self, layer_idx: int = 0) -> int:
        """Positions already written in layer ``layer_idx``."""
        return self._lengths[layer_idx]

    def update(self, layer_idx: int, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``key``/``value`` ``[B, H_kv, q, D]`` at the next ``q`` positions; return the filled prefix views."""
        start = self._lengths[layer_idx]
        end = start + key.shape[2]
        if end > self.max_len:
            raise TraceError(
                f"KV cache overflow in layer {layer_idx}: {end} positions needed, {self.max_len} allocated; "
                "allocate the cache with max_len >= prompt length + new tokens"
            )
        self.keys[layer_idx][:, :, start:end].copy_(key)
        self.values[layer_idx][:, :, start:end].copy_(value)
        self._lengths[layer_idx] = end
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def fill_to(self, length: int) -> None:
        """Write ``length`` positions into every layer (uninitialised tensors: the contents are never read) - the
        past a decode step's cache holds, written outside the counter so that it is not charged."""
        with torch.no_grad():
            for layer in range(self.num_layers):
                key, _ = self.layer(layer)
                past = key.new_empty((key.shape[0], key.shape[1], length, key.shape[3]))
                self.update(layer, past, past)

    def layer(self, layer_idx: int) -> tuple[Tensor, Tensor]:
        """Views ``[B, H_kv, L, D]`` of the filled part of layer ``layer_idx``."""
        end = self._lengths[layer_idx]
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def filled(self) -> list[Tensor]:
        """Views of the filled part of every layer, keys then values, layer by layer: ``[K0, V0, K1, V1, ...]``."""
        return [t for layer in range(self.num_layers) for t in self.layer(layer)]

    def buffers(self) -> list[Tensor]:
        """All underlying buffers, keys then values, layer by layer: ``[K0, V0, K1, V1, ...]``."""
        out: list[Tensor] = []
        for key, value in zip(self.keys, self.values, strict=True):
            out += [key, value]
        return out

    def nbytes(self) -> int:
        """Bytes allocated for all buffers (``2 * layers * B * H_kv * L_max * D * itemsize``)."""
        return sum(t.numel() * t.element_size() for t in self.buffers())


def cache_pass(kv: KVCache, *, run: Callable[[], Any], live: Sequence[Tensor]) -> PassInputs:
    """A pass that runs ``run`` over ``kv`` with the input tensors ``live``; afterwards it holds ``kv``'s filled
    views."""
    return PassInputs(run=run, live=live, kv=kv.buffers(), kv_filled=lambda out: kv.filled())


def decode_pass(kv: KVCache, *, cached: int, run: Callable[[], Any], live: Sequence[Tensor]) -> PassInputs:
    """A decode step: :func:`cache_pass` over ``kv`` once it holds the ``cached`` past positions (written here,
    outside the counter)."""
    kv.fill_to(cached)
    return cache_pass(kv, run=run, live=live)
