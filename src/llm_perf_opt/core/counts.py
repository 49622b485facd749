"""Additive cost counters shared by the tracer, the analytic model, the time model and the reports.

Conventions (``docs/conventions.md`` §1-§2): FLOPs are 2 per multiply-accumulate; bytes are read and written
separately; weight and KV-cache bytes are *subsets* of the read/written totals, never extra; every
field is an exact integer in SI base units (FLOPs, bytes, kernel launches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from attrs import field, fields, frozen

__all__ = ["BYTE_FIELDS", "COST_FIELDS", "Cost", "Counters", "rescale_bytes"]


def _nonneg(instance: object, attribute: object, value: int) -> None:
    if value < 0:
        name = getattr(attribute, "name", "?")
        raise ValueError(f"Cost.{name} must be >= 0, got {value}")


@frozen(kw_only=True)
class Cost:
    """Counters for one op, one module call, or any sum of them.

    ``matmul_flops`` follows torch's ``FlopCounterMode`` convention (attention counted dense), so it can
    be checked against torch and against docs/model-facts.md.  ``matmul_flops_executed`` is what the attention
    kernel in use executes: equal to ``matmul_flops`` except for fused causal attention, where a flash
    kernel skips the masked half (q*k - q*(q-1)/2 score entries instead of q*k).
    """

    matmul_flops: int = field(default=0, validator=_nonneg, metadata={"help": "matmul/conv/attention FLOPs, dense"})
    matmul_flops_executed: int = field(
        default=0, validator=_nonneg, metadata={"help": "matmul FLOPs the kernel executes (causal-effective)"}
    )
    vector_flops: int = field(
        default=0, validator=_nonneg, metadata={"help": "elementwise/reduction/norm/softmax/activation FLOPs"}
    )
    bytes_read: int = field(default=0, validator=_nonneg, metadata={"help": "bytes read (all operands)"})
    bytes_written: int = field(default=0, validator=_nonneg, metadata={"help": "bytes written (all outputs)"})
    weight_bytes_read: int = field(default=0, validator=_nonneg, metadata={"help": "part of bytes_read: parameters"})
    kv_bytes_read: int = field(default=0, validator=_nonneg, metadata={"help": "part of bytes_read: KV cache"})
    kv_bytes_written: int = field(default=0, validator=_nonneg, metadata={"help": "part of bytes_written: KV cache"})
    kernels: int = field(default=0, validator=_nonneg, metadata={"help": "counted (non-free) op launches"})

    @property
    def total_flops(self) -> int:
        """Executed matmul FLOPs plus vector FLOPs (the contract's ``total_flops_tflops`` x 1e12)."""
        return self.matmul_flops_executed + self.vector_flops

    @property
    def total_bytes(self) -> int:
        """Bytes read plus bytes written (the contract's ``total_io_tb`` x 1e12)."""
        return self.bytes_read + self.bytes_written

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(**{name: getattr(self, name) + getattr(other, name) for name in COST_FIELDS})

    def scaled(self, factor: int) -> Cost:
        """This cost repeated ``factor`` times (``factor`` >= 0, an integer count of repetitions)."""
        if factor < 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        return Cost(**{name: getattr(self, name) * factor for name in COST_FIELDS})

    def at_element_bytes(self, *, counted: int, target: int) -> Cost:
        """This cost with every byte counter moved from ``counted`` to ``target`` bytes per element
        (:func:`rescale_bytes`); FLOPs and kernels unchanged."""
        if counted == target:
            return self
        values = self.as_dict()
        for name in BYTE_FIELDS:
            values[name] = rescale_bytes(values[name], counted=counted, target=target)
        return Cost(**values)

    def as_dict(self) -> dict[str, int]:
        """Field name -> value, in declaration order (stable for JSON output)."""
        return {name: getattr(self, name) for name in COST_FIELDS}

    @classmethod
    def from_mapping(cls, values: Mapping[str, int]) -> Cost:
        """Inverse of :meth:`as_dict`; unknown keys are an error, missing keys are 0."""
        unknown = set(values) - set(COST_FIELDS)
        if unknown:
            raise ValueError(f"unknown Cost fields {sorted(unknown)}; expected {list(COST_FIELDS)}")
        return cls(**{k: int(v) for k, v in values.items()})

    @staticmethod
    def total(costs: Iterable[Cost]) -> Cost:
        """Sum of ``costs`` (the zero cost for an empty iterable)."""
        acc = Cost()
        for cost in costs:
            acc = acc + cost
        return acc


COST_FIELDS: tuple[str, ...] = tuple(a.name for a in fields(Cost))
BYTE_FIELDS: tuple[str, ...] = tuple(name for name in COST_FIELDS if "bytes" in name)
"""The counters that change with the storage width (every one but the FLOPs and kernels)."""


class Counters:
    """Running sums with :class:`Cost`'s field names, for the hot loops that add many small amounts (the tracer's
    per-op rows, the analytic model's per-node sums): mutable and slotted, so an add is an attribute update and
    no intermediate :class:`Cost` is built.  :meth:`to_cost` freezes one into a :class:`Cost`.

    In a tracer row ``kernels`` counts every call of the op; a zero-cost or unsupported op is no kernel, so its
    :class:`Cost` takes :meth:`to_cost` with ``kernels=False``.
    """

    __slots__ = (
        "bytes_read",
        "bytes_written",
        "kernels",
        "kv_bytes_read",
        "kv_bytes_written",
        "matmul_flops",
        "matmul_flops_executed",
        "vector_flops",
        "weight_bytes_read",
    )
    matmul_flops: int
    matmul_flops_executed: int
    vector_flops: int
    bytes_read: int
    bytes_written: int
    weight_bytes_read: int
    kv_bytes_read: int
    kv_bytes_written: int
    kernels: int

    def __init__(
        self,
        *,
        matmul_flops: int = 0,
        matmul_flops_executed: int = 0,
        vector_flops: int = 0,
        bytes_read: int = 0,
        bytes_written: int = 0,
        weight_bytes_read: int = 0,
        kv_bytes_read: int = 0,
        kv_bytes_written: int = 0,
        kernels: int = 0,
    ) -> None:
        self.matmul_flops = matmul_flops
        self.matmul_flops_executed = matmul_flops_executed
        self.vector_flops = vector_flops
        self.bytes_read = bytes_read
        self.bytes_written = bytes_written
        self.weight_bytes_read = weight_bytes_read
        self.kv_bytes_read = kv_bytes_read
        self.kv_bytes_written = kv_bytes_written
        self.kernels = kernels

    def add(self, other: Counters | Cost, times: int = 1) -> None:
        """Add ``times`` x ``other`` (a :class:`Counters` or a :class:`Cost`) into these counters."""
        if times == 1:  # the common case, without the multiplications
            self.matmul_flops += other.matmul_flops
            self.matmul_flops_executed += other.matmul_flops_executed
            self.vector_flops += other.vector_flops
            self.bytes_read += other.bytes_read
            self.bytes_written += other.bytes_written
            self.weight_bytes_read += other.weight_bytes_read
            self.kv_bytes_read += other.kv_bytes_read
            self.kv_bytes_written += other.kv_bytes_written
            self.kernels += other.kernels
            return
        self.matmul_flops += other.matmul_flops * times
        self.matmul_flops_executed += other.matmul_flops_executed * times
        self.vector_flops += other.vector_flops * times
        self.bytes_read += other.bytes_read * times
        self.bytes_written += other.bytes_written * times
        self.weight_bytes_read += other.weight_bytes_read * times
        self.kv_bytes_read += other.kv_bytes_read * times
        self.kv_bytes_written += other.kv_bytes_written * times
        self.kernels += other.kernels * times

    def copy(self) -> Counters:
        """An independent copy (made field by field, without ``__init__``: a trace copies tens of thousands)."""
        out = Counters.__new__(Counters)
        out.matmul_flops = self.matmul_flops
        out.matmul_flops_executed = self.matmul_flops_executed
        out.vector_flops = self.vector_flops
        out.bytes_read = self.bytes_read
        out.bytes_written = self.bytes_written
        out.weight_bytes_read = self.weight_bytes_read
        out.kv_bytes_read = self.kv_bytes_read
        out.kv_bytes_written = self.kv_bytes_written
        out.kernels = self.kernels
        return out

    def to_cost(self, *, kernels: bool = True) -> Cost:
        """These counters as a :class:`Cost` (``kernels=False``: with ``kernels`` 0, for ops that launch none)."""
        return Cost(
            matmul_flops=self.matmul_flops,
            matmul_flops_executed=self.matmul_flops_executed,
            vector_flops=self.vector_flops,
            bytes_read=self.bytes_read,
            bytes_written=self.bytes_written,
            weight_bytes_read=self.weight_bytes_read,
            kv_bytes_read=self.kv_bytes_read,
            kv_bytes_written=self.kv_bytes_written,
            kernels=self.kernels if kernels else 0,
        )

    @classmethod
    def from_cost(cls, cost: Cost) -> Counters:
        """Counters starting at ``cost``."""
        out = cls()
        out.add(cost)
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, int]) -> Counters:
        """Counters from field name -> value (unknown names are an error, missing ones 0)."""
        unknown = set(values) - set(COST_FIELDS)
        if unknown:
            raise ValueError(f"unknown counter fields {sorted(unknown)}; expected {list(COST_FIELDS)}")
        return cls(**{name: int(v) for name, v in values.items()})

    @classmethod
    def from_values(cls, values: Sequence[int]) -> Counters:
        """Counters from values given in :data:`COST_FIELDS` order (the order :class:`Cost` declares them)."""
        out = cls.__new__(cls)
        (
            out.matmul_flops,
            out.matmul_flops_executed,
            out.vector_flops,
            out.bytes_read,
            out.bytes_written,
            out.weight_bytes_read,
            out.kv_bytes_read,
            out.kv_bytes_written,
            out.kernels,
        ) = values
        return out

    def as_dict(self) -> dict[str, int]:
        """Field name -> value, in :data:`COST_FIELDS` order."""
        return {name: getattr(self, name) for name in COST_FIELDS}

    def any(self) -> bool:
        """Whether any counter is non-zero."""
        return bool(
            self.matmul_flops
            or self.matmul_flops_executed
            or self.vector_flops
            or self.bytes_read
            or self.bytes_written
            or self.weight_bytes_read
            or self.kv_bytes_read
            or self.kv_bytes_written
            or self.kernels
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counters):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in COST_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Counters({', '.join(f'{k}={v}' for k, v in self.as_dict().items() if v)})"


def rescale_bytes(n: int, *, counted: int, target: int) -> int:
    """``floor(n * target / counted)``: ``n`` bytes counted at ``counted`` bytes per element, at ``target`` bytes.

    The one dtype rescale of the project (every byte of a run - weights, activations, KV - changes width together;
    fp32 logits and int64 ids are rescaled with the rest, a what-if).  The floor keeps sums consistent: a parent's
    rescaled inclusive count is never below the sum of its children's, and a subset never exceeds its total.
    """
    if counted <= 0 or target <= 0:
        raise ValueError(f"bytes per element must be > 0, got counted={counted}, target={target}")
    return n * target // counted
