"""MoE routing models: how many tokens each routed expert receives, without running a gate.

Total MoE FLOPs do not depend on routing (every token always runs ``k`` experts); which expert weights are read
and how unevenly the work is spread do.  Prior tools assumed perfect balance silently; here routing is an explicit
input and reports name the model used (:meth:`RoutingModel.describe`).

Kinds:

* ``balanced`` (default): the ``T*k`` assignments spread as evenly as possible; the experts that get one extra
  start at ``layer_idx*k mod E`` so layers touch different experts (at ``T = 1`` exactly ``k`` experts get 1).
* ``skewed`` (``alpha``): Zipf-like popularity, the ``r``-th most popular expert (``r = 1..E``) weighted ``r**-alpha``;
  the popularity order is rotated by ``layer_idx*k`` per layer.  ``alpha = 0`` is balanced.
* ``histogram``: measured per-layer expert counts (a mapping layer index -> list of counts: inline, or a JSON/YAML
  file the user names), rescaled to ``T*k``.  A file is read only when it is a regular file of at most
  :data:`MAX_HISTOGRAM_FILE_BYTES` (never a FIFO, device or folder, which could block or never end).

Every kind obeys the same constraints: counts are integers, sum to ``T*k``, and none exceeds ``T`` (a token picks
``k`` distinct experts).  So a histogram layer needs at least ``k`` experts with counts: one with fewer is refused
(:meth:`RoutingModel.check_top_k`, also where the counts are used), never filled up with the experts it left
empty.  Rescaling is proportional with that cap (excess above ``T`` flows to the other experts), rounded by largest
remainder with ties to the lower expert index - so results are deterministic.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from attrs import field, frozen

from llm_perf_opt.errors import UserError

__all__ = [
    "MAX_HISTOGRAM_FILE_BYTES",
    "MAX_SKEW_ALPHA",
    "ROUTING_KINDS",
    "RoutingModel",
    "expected_distinct_experts",
    "read_histogram_file",
    "too_few_experts",
]

ROUTING_KINDS = ("balanced", "skewed", "histogram")
_WEIGHT_SCALE = 1 << 40  # skew weights as exact integers: round(r**-alpha * 2**40)
MAX_SKEW_ALPHA = 8.0
"""Largest skew exponent: at 8 the most popular expert already takes every token it can (the cap ``T``)."""
MAX_HISTOGRAM_FILE_BYTES = 1 << 20
"""Largest routing histogram file (1 MiB): 64 layers x 256 experts of 10-digit counts fit in well under that."""


def expected_distinct_experts(*, E: int, k: int, T: int) -> float:
    """Expected distinct experts touched when ``T`` tokens each pick ``k`` of ``E`` uniformly:
    ``E*(1 - (1 - k/E)**T)``.  E=64, k=6: 6 at T=1, about 35 at T=8, about 64 at T=64.

    Source: prior-art notes (independent uniform top-k picks per token); leaves out gate correlation between tokens,
    which in real traffic concentrates load and lowers the count.
    """
    if E <= 0 or not 0 <= k <= E or T < 0:
        raise ValueError(f"need E > 0, 0 <= k <= E and T >= 0, got E={E}, k={k}, T={T}")
    return E * (1.0 - (1.0 - k / E) ** T)


@frozen(kw_only=True)
class RoutingModel:
    """How the ``T*k`` token-to-expert assignments of one MoE layer call are spread over ``E`` experts."""

    kind: Literal["balanced", "skewed", "histogram"] = field(default="balanced", metadata={"help": "routing kind"})
    alpha: float = field(default=0.0, metadata={"help": "skew exponent (skewed only): weight of rank r is r**-alpha"})
    histogram: tuple[tuple[int, tuple[int, ...]], ...] = field(
        default=(), metadata={"help": "histogram only: (layer index, per-expert counts) pairs, sorted by layer"}
    )
    source: str | None = field(default=None, metadata={"help": "histogram only: where the counts came from"})

    # -- named constructors -------------------------------------------------------------------
    @classmethod
    def balanced(cls) -> RoutingModel:
        """Even spread (the default)."""
        return cls()

    @classmethod
    def skewed(cls, alpha: float) -> RoutingModel:
        """Zipf-like popularity with exponent ``alpha`` in 0..8.

        For E=64, k=6, T=703 the busiest expert gets 4.4x the mean load at alpha=0.5 (the 4-5x seen in a real
        prefill trace, prior-art notes) and hits the cap ``T`` (10.7x) from alpha=1.0 on.
        """
        bad = isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha)
        if bad or not 0.0 <= alpha <= MAX_SKEW_ALPHA:
            raise UserError(f"skew alpha must be a number in 0..{MAX_SKEW_ALPHA:g}, got {alpha!r}; e.g. skewed:1.2")
        return cls(kind="skewed", alpha=float(alpha))

    @classmethod
    def from_histogram(cls, counts: Mapping[Any, Any], *, source: str | None = None) -> RoutingModel:
        """Per-layer measured counts: ``{layer index: [count per expert, ...]}`` (keys may be strings of digits)."""
        where = f" in {source}" if source else ""
        if not isinstance(counts, Mapping) or not counts:
            raise UserError(f"routing histogram{where} must map layer index -> list of expert counts, got {counts!r}")
        layers: dict[int, tuple[int, ...]] = {}
        for key, value in counts.items():
            layer = _layer_index(key, where)
            layers[layer] = _expert_counts_row(layer, value, where)
        return cls(kind="histogram", histogram=tuple(sorted(layers.items())), source=source)

    @classmethod
    def from_histogram_file(cls, path: str | Path) -> RoutingModel:
        """Load a histogram from a ``.json`` or ``.yaml``/``.yml`` file (checked by :func:`read_histogram_file`)."""
        file = Path(path)
        text = read_histogram_file(file)
        try:
            data = yaml.safe_load(text) if file.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"routing histogram {file} is not valid JSON/YAML: {first}") from None
        return cls.from_histogram(data, source=str(file))

    @classmethod
    def from_histogram_json(cls, text: str) -> RoutingModel:
        """An inline histogram: a JSON object ``{"layer": [count, ...], ...}`` (what the service passes on)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UserError(f"inline routing histogram is not valid JSON: {exc}") from None
        return cls.from_histogram(data, source="inline")

    @classmethod
    def parse(cls, text: str) -> RoutingModel:
        """CLI form: ``balanced``, ``skewed:ALPHA`` (e.g. ``skewed:1.2``), ``histogram:PATH`` (JSON or YAML) or
        ``histogram:{...}`` (the counts inline, as JSON; never read from a file)."""
        kind, sep, arg = text.strip().partition(":")
        if kind == "balanced" and not sep:
            return cls.balanced()
        if kind == "skewed" and arg:
            try:
                alpha = float(arg)
            except ValueError:
                raise UserError(f"routing {text!r}: skew alpha {arg!r} is not a number; e.g. skewed:1.2") from None
            return cls.skewed(alpha)
        if kind == "histogram" and arg.lstrip().startswith("{"):
            return cls.from_histogram_json(arg)
        if kind == "histogram" and arg:
            return cls.from_histogram_file(arg)
        raise UserError(
            f"unknown routing {text!r}; expected balanced, skewed:ALPHA (e.g. skewed:1.2) or histogram:PATH.json"
        )

    # -- queries ----------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line for reports, e.g. ``balanced``, ``skewed(alpha=1.2)``, ``histogram(f.json, layers 1..11)``."""
        if self.kind == "skewed":
            return f"skewed(alpha={self.alpha:g})"
        if self.kind == "histogram":
            layers = [layer for layer, _ in self.histogram]
            span = f"layers {layers[0]}..{layers[-1]}" if len(layers) > 1 else f"layer {layers[0]}"
            return f"histogram({self.source or 'inline'}, {span})"
        return "balanced"

    def check_top_k(self, top_k: int) -> None:
        """Refuse a histogram that a top-``k`` router cannot have produced: every token picks ``k`` distinct experts,
        so each layer needs at least ``k`` experts with counts (fewer has no meaning; it is never spread over the
        experts the histogram left empty).  Balanced and skewed routing always pass."""
        for layer, row in self.histogram:
            problem = too_few_experts(layer, row, top_k)
            if problem:
                raise UserError(f"routing {self.describe()}: {problem}")

    def expert_counts(self, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int) -> tuple[int, ...]:
        """Tokens routed to each of ``E = num_experts`` experts for ``T = num_tokens`` tokens, ``k = top_k``.

        Sum is ``T*k``; each count is ``<= T``; the same arguments always give the same answer.
        """
        if num_experts <= 0 or not 0 < top_k <= num_experts or num_tokens < 0:
            raise ValueError(
                f"need num_experts > 0, 0 < top_k <= num_experts, num_tokens >= 0; "
                f"got E={num_experts}, k={top_k}, T={num_tokens}"
            )
        if self.kind == "balanced":
            return _balanced(layer_idx, num_tokens, num_experts, top_k)
        return _capped_allocation(self._weights(layer_idx, num_experts, top_k), num_tokens * top_k, num_tokens)

    def expert_assignment(
        self, *, layer_idx: int, num_tokens: int, num_experts: int, top_k: int
    ) -> tuple[tuple[int, ...], ...]:
        """One tuple of ``k`` distinct expert ids per token, consistent with :meth:`expert_counts`.

        The ``T*k`` slots, expert by expert in index order, fill a ``T x k`` table column by column; since no expert
        has more than ``T`` slots, no token gets an expert twice.
        """
        counts = self.expert_counts(layer_idx=layer_idx, num_tokens=num_tokens, num_experts=num_experts, top_k=top_k)
        slots = [expert for expert, count in enumerate(counts) for _ in range(count)]
        return tuple(tuple(slots[col * num_tokens + tok] for col in range(top_k)) for tok in range(num_tokens))

    def _weights(self, layer_idx: int, num_experts: int, top_k: int) -> tuple[int, ...]:
        if self.kind == "skewed":
            return _zipf_weights(self.alpha, layer_idx, num_experts, top_k)
        row = dict(self.histogram).get(layer_idx)
        if row is None:
            known = ", ".join(str(layer) for layer, _ in self.histogram)
            raise UserError(
                f"routing {self.describe()} has no counts for layer {layer_idx} (it covers layers {known}); "
                "add that layer or use balanced/skewed routing"
            )
        if len(row) != num_experts:
            raise UserError(
                f"routing {self.describe()} layer {layer_idx} lists {len(row)} experts but the model has "
                f"{num_experts}; use counts recorded on this model"
            )
        problem = too_few_experts(layer_idx, row, top_k)
        if problem:
            raise UserError(f"routing {self.describe()}: {problem}")
        return row


def too_few_experts(layer: int, row: Sequence[int], top_k: int) -> str:
    """``layer L has n experts with counts; top-k routing needs at least k`` when ``n < k``, else ``""``."""
    have = sum(1 for count in row if count)
    if have >= top_k:
        return ""
    experts = "expert" if have == 1 else "experts"
    return (
        f"layer {layer} has {have} {experts} with counts; top-{top_k} routing needs at least {top_k} (each token "
        f"picks {top_k} distinct experts); use counts recorded on this model"
    )


def read_histogram_file(file: Path) -> str:
    """The text of a histogram file the user named: a regular file of at most :data:`MAX_HISTOGRAM_FILE_BYTES`.

    The file is ``stat``-ed before it is opened and opened non-blocking, so a FIFO, a device (``/dev/zero``) or a
    folder is refused in one line instead of blocking or reading forever.
    """
    try:
        info = file.stat()
    except OSError as exc:
        raise UserError(f"cannot read routing histogram {file}: {exc.strerror}; expected a JSON or YAML file") from None
    _check_regular(file, info)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UserError(f"cannot read routing histogram {file}: {exc.strerror}; expected a JSON or YAML file") from None
    with os.fdopen(fd, "rb") as handle:
        _check_regular(file, os.fstat(handle.fileno()))  # the path may have been swapped since the stat
        data = handle.read(MAX_HISTOGRAM_FILE_BYTES + 1)
    if len(data) > MAX_HISTOGRAM_FILE_BYTES:
        raise UserError(_too_large(file))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"routing histogram {file} is not UTF-8 text; expected a JSON or YAML file") from None


def _check_regular(file: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise UserError(f"routing histogram {file} is {kind}; expected a JSON or YAML file")
    if info.st_size > MAX_HISTOGRAM_FILE_BYTES:
        raise UserError(_too_large(file))


def _too_large(file: Path) -> str:
    return (
        f"routing histogram {file} is larger than {MAX_HISTOGRAM_FILE_BYTES} bytes; expected per-layer expert "
        "counts (a few kB)"
    )


def _layer_index(key: Any, where: str) -> int:
    if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    raise UserError(f"routing histogram{where}: layer key {key!r} is not a non-negative layer index")


def _expert_counts_row(layer: int, value: Any, where: str) -> tuple[int, ...]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
    if ok and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value):
        row = tuple(int(c) for c in value)
        if sum(row) > 0:
            return row
    raise UserError(
        f"routing histogram{where}: layer {layer} must list non-negative integer counts per expert "
        f"with a positive sum, got {value!r}"
    )


@lru_cache(maxsize=4096)
def _balanced(layer_idx: int, T: int, E: int, k: int) -> tuple[int, ...]:
    """``floor(T*k/E)`` each, and one more for ``T*k mod E`` experts starting at ``layer_idx*k mod E``."""
    base, extra = divmod(T * k, E)
    start = (layer_idx * k) % E
    return tuple(base + (1 if (e - start) % E < extra else 0) for e in range(E))


@lru_cache(maxsize=256)
def _zipf_weights(alpha: float, layer_idx: int, E: int, k: int) -> tuple[int, ...]:
    """Expert ``(start + r - 1) mod E`` has popularity rank ``r``; weight ``round(r**-alpha * 2**40)`` (>= 1)."""
    start = (layer_idx * k) % E
    weights = [0] * E
    for rank in range(1, E + 1):
        weights[(start + rank - 1) % E] = max(1, round(rank ** (-alpha) * _WEIGHT_SCALE))
    return tuple(weights)


@lru_cache(maxsize=4096)
def _capped_allocation(weights: tuple[int, ...], total: int, cap: int) -> tuple[int, ...]:
    """Integers proportional to ``weights`` summing to ``total``, none above ``cap`` (needs ``total <= cap*E``).

    Water-filling: experts whose proportional share exceeds ``cap`` are fixed at ``cap`` and the rest is shared again
    among the others (evenly if their weights are all zero).  Then largest-remainder rounding, ties to lower index.
    """
    E = len(weights)
    fixed: set[int] = set()
    while True:
        free = [e for e in range(E) if e not in fixed]
        remaining = total - cap * len(fixed)
        if not free:
            break
        w = [weights[e] for e in free]
        if sum(w) == 0:
            w = [1] * len(free)
        wsum = sum(w)
        over = [e for e, we in zip(free, w, strict=True) if remaining * we > cap * wsum]
        if not over:
            break
        fixed.update(over)
    counts = [cap if e in fixed else 0 for e in range(E)]
    remainders: list[tuple[int, int]] = []
    for e, we in zip(free, w if free else [], strict=True):
        counts[e], rem = divmod(remaining * we, wsum)
        remainders.append((-rem, e))
    leftover = total - sum(counts)
    for _, e in sorted(remainders)[:leftover]:
        counts[e] += 1
    return tuple(counts)
