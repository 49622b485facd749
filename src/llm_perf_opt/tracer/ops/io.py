"""Byte accounting for one op: which operand bytes are read and written, and whose memory they are.

Rules (docs/conventions.md §2): a tensor operand is read once per element it *addresses*: dimensions with stride 0
(broadcast/expand) are read once, so ``read_bytes = element_size * prod(size[d] for d with stride[d] != 0)``.
Outputs are written in full.  Bytes are classified by the storage they live in: a parameter's storage (or any
view of it) is *weight* memory, a KV-cache storage is *KV* memory, anything else is an activation.  Weight and
KV bytes are subsets of the read/written totals, never extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["ACTIVATION", "KV", "WEIGHT", "OpIO", "nbytes", "read_bytes", "tensors_in"]

ACTIVATION = 0
WEIGHT = 1
KV = 2

_Tensor = torch.Tensor


def nbytes(t: torch.Tensor) -> int:
    """numel * element size: the bytes an output of this shape occupies when written densely."""
    return t.numel() * t.element_size()


def read_bytes(t: torch.Tensor) -> int:
    """Bytes addressed by ``t``: stride-0 (broadcast) dimensions count once."""
    if t.is_contiguous():
        return t.numel() * t.element_size()
    n = t.element_size()
    for size, stride in zip(t.size(), t.stride(), strict=True):
        if stride != 0:
            n *= size
    return n


def tensors_in(values: Iterable[Any]) -> Iterable[torch.Tensor]:
    """Tensors among ``values`` and inside lists/tuples one level down (aten args never nest deeper)."""
    for value in values:
        if isinstance(value, _Tensor):
            yield value
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, _Tensor):
                    yield item


class OpIO:
    """Scratch accumulator for one op, reused across ops (reset before each).

    ``kinds`` maps ``id(storage)`` to WEIGHT or KV; the owner keeps those storages alive so ids stay unique.
    Formula handlers set ``mm``/``mm_exec``/``vec`` and call :meth:`read`/:meth:`write`; ``out_kv`` asks the
    counter to mark the op's output storage as KV cache (a KV append); ``kv_target`` is the KV storage written.
    """

    __slots__ = (
        "kinds",
        "kv_read",
        "kv_target",
        "kv_written",
        "mm",
        "mm_exec",
        "out_kv",
        "read_total",
        "vec",
        "w_read",
        "written",
    )

    def __init__(self, kinds: dict[int, int]) -> None:
        self.kinds = kinds
        self.reset()

    def reset(self) -> None:
        self.mm = 0
        self.mm_exec = 0
        self.vec = 0
        self.read_total = 0
        self.written = 0
        self.w_read = 0
        self.kv_read = 0
        self.kv_written = 0
        self.kv_target = 0
        self.out_kv = False

    def kind(self, t: torch.Tensor) -> int:
        return self.kinds.get(id(t.untyped_storage()), ACTIVATION)

    def read(self, t: torch.Tensor, n: int = -1) -> None:
        """Charge reading ``t`` (``n`` bytes if given, else its addressed bytes)."""
        if n < 0:
            n = read_bytes(t)
        self.read_total += n
        kind = self.kinds.get(id(t.untyped_storage()), ACTIVATION) if self.kinds else ACTIVATION
        if kind == WEIGHT:
            self.w_read += n
        elif kind == KV:
            self.kv_read += n

    def write(self, t: torch.Tensor, n: int = -1) -> None:
        """Charge writing ``t`` (``n`` bytes if given, else all of it)."""
        if n < 0:
            n = t.numel() * t.element_size()
        self.written += n
        if self.kinds:
            sid = id(t.untyped_storage())
            if self.kinds.get(sid, ACTIVATION) == KV:
                self.kv_written += n
                self.kv_target = sid

    def read_all(self, values: Iterable[Any]) -> None:
        for t in tensors_in(values):
            self.read(t)

    def write_all(self, out: Any) -> None:
        if isinstance(out, _Tensor):
            self.write(out)
        elif isinstance(out, list | tuple):
            for item in out:
                if isinstance(item, _Tensor):
                    self.write(item)
