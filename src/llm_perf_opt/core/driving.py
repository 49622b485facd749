"""The neutral meeting point of model sources and the tracer (torch-free): what a driver is and what a traceable
source offers.

A model source (``llm_perf_opt.sources``) provides a :class:`Driver` for one model and one workload; the tracer
(``llm_perf_opt.tracer``) runs drivers.  Neither imports the other: both import this module.  Tensors appear as
``Any`` here so that the module stays importable without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from attrs import field, frozen

__all__ = ["Driver", "InputsDriver", "PassInputs", "TraceableSource"]


def _nothing_filled(out: Any) -> Sequence[Any]:
    return ()


@frozen(kw_only=True, eq=False)
class PassInputs:
    """One forward pass, ready to run."""

    run: Callable[[], Any] = field(metadata={"help": "runs the forward (inputs already bound)"})
    live: Sequence[Any] = field(default=(), metadata={"help": "input tensors: live activations"})
    kv: Sequence[Any] = field(default=(), metadata={"help": "KV-cache buffers handed to the pass"})
    kv_filled: Callable[[Any], Sequence[Any]] = field(
        default=_nothing_filled, metadata={"help": "from the pass output: the filled KV views held afterwards"}
    )


class Driver(Protocol):
    """How to run one model on one workload: the prefill pass and decode step ``i`` (1-based), inputs made outside
    the counter so building them is not charged; ``seq_len`` S and ``max_new_tokens`` N of the driven workload.

    A driver may also offer ``language_prefill() -> PassInputs``: the prefill with no vision or projector stage
    run (the same shapes and live inputs for the language model); the tracer then traces a large batch's language
    stages without running any per-row vision code (the built-in v1 driver does)."""

    @property
    def decode_steps(self) -> int: ...

    @property
    def seq_len(self) -> int: ...

    @property
    def max_new_tokens(self) -> int: ...

    def prefill(self) -> PassInputs: ...

    def step(self, i: int) -> PassInputs: ...


class InputsDriver:
    """What every driver of a workload's inputs (``self.inputs``) says about it: decode steps, S and N."""

    inputs: Any  # sources.deepseek_ocr_v1.WorkloadInputs

    @property
    def decode_steps(self) -> int:
        return int(self.inputs.num_decode_steps)

    @property
    def seq_len(self) -> int:
        """Prefill length S of the driven workload."""
        return int(self.inputs.seq_len)

    @property
    def max_new_tokens(self) -> int:
        return int(self.inputs.max_new_tokens)


class TraceableSource(Protocol):
    """What the tracer needs of a model source: a name, a module tree and a driver for a workload.

    A source may also carry ``stage_anchors`` (``{"vision": (...), "projector": (...), "language": (...)}``:
    ``named_modules()`` path prefixes) when its tree is not laid out like DeepSeek-OCR v1's, and ``pure_modules()``:
    the module classes whose calls depend on nothing but their structure and arguments, which the tracer may replay,
    and ``rows_in_one_call = True`` when its vision stages run every row of a batch in one call (the same ops at any
    batch: tracing every row costs no more than tracing a few, so the tracer does not extrapolate them).
    """

    @property
    def name(self) -> str: ...

    def build(self, *, attn_implementation: str) -> Any: ...

    def make_driver(self, model: Any, workload: Any, routing: Any) -> Driver: ...
