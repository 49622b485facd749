"""One op as a formula sees it (:class:`OpCall`), what the formula returns (:class:`OpCounts`), and the byte
accounting that turns those counts into the trace's counters (:class:`OpIO`, owned by the trace state).

Rules (docs/conventions.md §2): a tensor operand is read once per element it *addresses*: dimensions with stride 0
(broadcast/expand) are read once, so ``read_bytes = element_size * prod(size[d] for d with stride[d] != 0)``.
Outputs are written in full.  Bytes are classified by the storage they live in: a parameter's storage (or any
view of it) is *weight* memory, a KV-cache storage is *KV* memory, anything else is an activation.  Weight and
KV bytes are subsets of the read/written totals, never extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = [
    "ACTIVATION",
    "KV",
    "WEIGHT",
    "OpCall",
    "OpCounts",
    "OpIO",
    "SchemaIndex",
    "Touch",
    "dense_bytes",
    "nbytes",
    "read_bytes",
    "schema_index",
    "tensors_in",
    "touched",
]

ACTIVATION = 0
WEIGHT = 1
KV = 2

_Tensor = torch.Tensor


def nbytes(t: torch.Tensor) -> int:
    """numel * element size: the bytes an output of this shape occupies when written densely."""
    return t.numel() * t.element_size()


def dense_bytes(t: torch.Tensor) -> int:
    """Bytes of the storage ``torch.empty_strided`` makes for ``t``'s shape and strides (0 with no elements)."""
    if t.numel() == 0:
        return 0
    span = 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return span * t.element_size()


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


SchemaIndex = Mapping[str, tuple[int, Any]]
"""Argument name -> (position, default) of one op overload's schema."""

Touch = tuple[torch.Tensor, int]
"""A tensor and the bytes of it an op reads or writes (``-1``: read its addressed bytes, or write all of it)."""


def schema_index(func: Any) -> SchemaIndex:
    """Every argument of ``func``'s schema by name: its position and its default (None when it has none)."""
    return {
        a.name: (i, a.default_value if a.has_default_value() else None) for i, a in enumerate(func._schema.arguments)
    }


def touched(values: Iterable[Any]) -> tuple[Touch, ...]:
    """Every tensor among ``values`` (one level into lists), whole: ``(t, -1)`` each."""
    return tuple((t, -1) for t in tensors_in(values))


class OpCall:
    """One op call: its arguments by their schema names, its output, and whose memory a tensor is (read-only)."""

    __slots__ = ("_index", "_kinds", "args", "kwargs", "out")

    def __init__(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any, index: SchemaIndex, kinds: Mapping[int, int]
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.out = out
        self._index = index
        self._kinds = kinds

    def __getitem__(self, name: str) -> Any:
        """The argument called ``name`` (given by position or keyword, else its schema default)."""
        position, default = self._index[name]
        if position < len(self.args):
            return self.args[position]
        return self.kwargs.get(name, default)

    def has(self, name: str) -> bool:
        """Whether this overload's schema has an argument called ``name``."""
        return name in self._index

    def first_of(self, *names: str) -> Any:
        """The first of ``names`` this overload has (e.g. ``src``/``source``/``value`` across scatter overloads)."""
        return next((self[n] for n in names if n in self._index), None)

    @property
    def first(self) -> Any:
        """The first operand (``self``/``input``: what elementwise, reduction and copy formulas size by)."""
        return self.args[0]

    @property
    def result(self) -> torch.Tensor:
        """The (first) output tensor."""
        out = self.out
        return out[0] if isinstance(out, tuple | list) else out  # type: ignore[no-any-return]

    def operands(self, *, skip: int = 0) -> tuple[Touch, ...]:
        """The tensors passed positionally (after the first ``skip``), whole."""
        return touched(self.args[skip:])

    def outputs(self) -> tuple[Touch, ...]:
        """Every output tensor, whole."""
        return touched((self.out,))

    def kind(self, t: torch.Tensor) -> int:
        """ACTIVATION, WEIGHT or KV: the memory ``t``'s storage is."""
        return self._kinds.get(id(t.untyped_storage()), ACTIVATION)


class OpCounts:
    """What one op costs: FLOPs, and which tensors it reads and writes (bytes classified by :class:`OpIO`)."""

    __slots__ = ("kv_append", "mm", "mm_exec", "reads", "vec", "writes")

    def __init__(
        self,
        *,
        mm: int = 0,
        mm_exec: int | None = None,
        vec: int = 0,
        reads: tuple[Touch, ...] = (),
        writes: tuple[Touch, ...] = (),
        kv_append: int | None = None,
    ) -> None:
        self.mm = mm
        self.mm_exec = mm if mm_exec is None else mm_exec
        self.vec = vec
        self.reads = reads
        self.writes = writes
        self.kv_append = kv_append
        """A KV append that builds a new cache tensor (``cat``): the bytes it adds are written and KV, and the
        output becomes KV-cache memory.  None: not an append."""


class OpIO:
    """The trace state's byte accounting for one op at a time (:meth:`charge` resets it).

    ``kinds`` maps ``id(storage)`` to WEIGHT or KV; the owner keeps those storages alive so ids stay unique.
    :meth:`charge` classifies an :class:`OpCounts`' reads and writes; ``out_kv`` asks the counter to mark the op's
    output storage as KV cache (a KV append); ``kv_target`` is the KV storage written.
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

    def charge(self, counts: OpCounts) -> None:
        """Account one op's counts: FLOPs as given, every read and write classified by the storage it touches."""
        self.reset()
        self.mm = counts.mm
        self.mm_exec = counts.mm_exec
        self.vec = counts.vec
        for t, n in counts.reads:
            self.read(t, n)
        for t, n in counts.writes:
            self.write(t, n)
        if counts.kv_append is not None:
            self.written += counts.kv_append
            self.kv_written += counts.kv_append
            self.out_kv = True

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
