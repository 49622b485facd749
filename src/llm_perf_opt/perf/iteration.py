"""One serving iteration: what a continuous-batching scheduler runs in a single forward, and who times it.

A serving engine (vLLM V1, SGLang) builds every iteration anew: some requests advance their prefill by a chunk of
prompt tokens (running the vision encoder in the iteration that starts a request with a page), the others decode one
token each over their own context. The serving simulator describes each iteration with a :class:`BatchComposition`;
a runtime model answers how long it takes through the :class:`IterationTimer` protocol. Both sides are torch-free.

This module is the neutral meeting point of the runtime kernel models (which implement the protocol) and the serving
simulator (which calls it); neither imports the other.
"""

from __future__ import annotations

from typing import Protocol

from attrs import field, frozen

__all__ = ["BatchComposition", "IterationTimer", "PrefillChunk"]


def _nonneg(instance: object, attribute: object, value: int) -> None:
    if value < 0:
        raise ValueError(f"{getattr(attribute, 'name', '?')} must be >= 0, got {value}")


@frozen(kw_only=True)
class PrefillChunk:
    """Part of one request's prefill that runs in this iteration."""

    new_tokens: int = field(validator=_nonneg, metadata={"help": "prompt positions computed in this iteration"})
    cached_tokens: int = field(default=0, validator=_nonneg, metadata={"help": "positions already in the KV cache"})
    vision_pages: int = field(
        default=0, validator=_nonneg, metadata={"help": "pages whose vision encoder runs in this iteration (0 or more)"}
    )
    vision_key: str = field(
        default="", metadata={"help": "which page workload the vision pages are (mode/page id); '' for text-only"}
    )


@frozen(kw_only=True)
class BatchComposition:
    """Everything one forward of the engine computes: prefill chunks beside one-token decode steps."""

    prefill: tuple[PrefillChunk, ...] = field(default=(), metadata={"help": "prefill chunks in this iteration"})
    decode_context: tuple[int, ...] = field(
        default=(), metadata={"help": "keys attended (context length incl. the new token) per decoding sequence"}
    )

    @property
    def num_tokens(self) -> int:
        """Tokens the decoder computes in this iteration (the scheduler's token budget counts these)."""
        return sum(chunk.new_tokens for chunk in self.prefill) + len(self.decode_context)

    @property
    def is_empty(self) -> bool:
        """True when the iteration computes nothing."""
        return self.num_tokens == 0 and not any(chunk.vision_pages for chunk in self.prefill)


class IterationTimer(Protocol):
    """Wall time of one engine iteration on one device, for one runtime (seconds)."""

    def iteration_s(self, batch: BatchComposition) -> float:
        """Seconds from the scheduler's decision to the iteration's tokens being available."""
        ...
