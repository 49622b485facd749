"""Stage results: vision, projector, prefill, time to first token, time per output token, end to end.

Generation semantics (docs/architecture.md): with ``max_new_tokens = N`` the first token comes out of prefill and
``N - 1`` decode steps follow. So

* ``TTFT = vision + projector + prefill`` (the ``other`` stage, normally empty, is not part of it);
* ``TPOT = decode / (N - 1)``: the mean decode step over the ``N - 1`` steps (0 when ``N = 1``);
* ``end_to_end = TTFT + decode + other``.

All times are for the whole batch: one decode step yields one token for each of the ``B`` sequences.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from llm_perf_opt.perf.tree import STAGES

__all__ = ["StageTimes"]


def _nonneg_float(instance: object, attribute: object, value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{getattr(attribute, 'name', '?')} must be >= 0, got {value}")


@frozen(kw_only=True)
class StageTimes:
    """Seconds per stage for one workload on one device, and the latencies derived from them."""

    vision_s: float = field(default=0.0, validator=_nonneg_float, metadata={"help": "SAM + CLIP"})
    projector_s: float = field(default=0.0, validator=_nonneg_float, metadata={"help": "projector + injection"})
    prefill_s: float = field(default=0.0, validator=_nonneg_float, metadata={"help": "decoder over the prompt"})
    decode_s: float = field(default=0.0, validator=_nonneg_float, metadata={"help": "all N-1 decode steps"})
    other_s: float = field(default=0.0, validator=_nonneg_float, metadata={"help": "anything else"})
    decode_steps: int = field(default=0, metadata={"help": "N - 1"})

    @classmethod
    def from_stage_seconds(cls, stage_s: Mapping[str, float], *, decode_steps: int) -> StageTimes:
        """From ``{stage: seconds}`` (missing stages are 0; an unknown stage is an error)."""
        unknown = sorted(set(stage_s) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; expected {', '.join(STAGES)}")
        if decode_steps < 0:
            raise ValueError(f"decode_steps must be >= 0, got {decode_steps}")
        return cls(
            vision_s=stage_s.get("vision", 0.0),
            projector_s=stage_s.get("projector", 0.0),
            prefill_s=stage_s.get("prefill", 0.0),
            decode_s=stage_s.get("decode", 0.0),
            other_s=stage_s.get("other", 0.0),
            decode_steps=decode_steps,
        )

    @property
    def ttft_s(self) -> float:
        """Time to first token: ``vision + projector + prefill``."""
        return self.vision_s + self.projector_s + self.prefill_s

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first: ``decode / (N - 1)``; 0 without decode steps."""
        return self.decode_s / self.decode_steps if self.decode_steps else 0.0

    @property
    def end_to_end_s(self) -> float:
        """``TTFT + decode + other``."""
        return self.ttft_s + self.decode_s + self.other_s

    def as_ms(self) -> dict[str, float]:
        """Every stage and latency in milliseconds (stable key order)."""
        return {
            "vision_ms": self.vision_s * 1e3,
            "projector_ms": self.projector_s * 1e3,
            "prefill_ms": self.prefill_s * 1e3,
            "ttft_ms": self.ttft_s * 1e3,
            "tpot_ms": self.tpot_s * 1e3,
            "decode_ms": self.decode_s * 1e3,
            "other_ms": self.other_s * 1e3,
            "end_to_end_ms": self.end_to_end_s * 1e3,
        }
