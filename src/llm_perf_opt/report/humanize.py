"""Human-readable numbers for the Markdown report and layer pages (SI prefixes, fixed precision, no locale).

Every renderer formats through these functions, so one report reads consistently: FLOPs as ``GFLOP``/``TFLOP``,
bytes as ``MB``/``GB`` (SI: 1 GB = 1e9 B, like the contract fields), times in ``ms`` (``us`` below 0.01 ms, ``s``
above 10 s), integers with thousands separators.  Output depends only on the value (deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "fmt_bytes",
    "fmt_bytes_apart",
    "fmt_count",
    "fmt_flops",
    "fmt_int",
    "fmt_ms",
    "fmt_ms_apart",
    "fmt_ms_column",
    "fmt_rate",
    "fmt_share",
    "fmt_signed_pct",
    "md_table",
    "plural",
    "si",
]

_PREFIXES: tuple[tuple[float, str], ...] = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str, *, digits: int = 3) -> str:
    """``value`` with the largest SI prefix that keeps it >= 1, ``digits`` significant figures: ``1.47 TFLOP``."""
    value = float(f"{value:.{digits}g}")  # round first, so 999.7e9 reads 1.00 TFLOP, not 1,000 GFLOP
    magnitude = abs(value)
    for factor, prefix in _PREFIXES:
        if magnitude >= factor:
            return f"{_sig(value / factor, digits)} {prefix}{unit}"
    return f"{_sig(value, digits)} {unit}"


def _sig(value: float, digits: int) -> str:
    """``digits`` significant figures, never in exponent form (``1.47``, ``235``, ``0.0123``, ``12,345``)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def fmt_flops(flops: float) -> str:
    """FLOPs (an amount): ``235 GFLOP``, ``1.47 TFLOP``."""
    return si(flops, "FLOP")


def fmt_rate(flops_per_s: float) -> str:
    """FLOP/s: ``989 TFLOP/s``."""
    return si(flops_per_s, "FLOP/s")


def fmt_bytes(nbytes: float) -> str:
    """Bytes with SI prefixes (1 GB = 1e9 B): ``6.67 GB``, ``61.4 kB``."""
    return si(nbytes, "B")


def fmt_bytes_apart(a: float, b: float) -> tuple[str, str]:
    """:func:`fmt_bytes` of two amounts one sentence compares, with as many more significant figures (up to 12) as
    they need to read differently when they differ: ``80.02 GB`` against ``80.00 GB``, not ``80.0 GB`` twice."""
    digits = 3
    while si(a, "B", digits=digits) == si(b, "B", digits=digits) and a != b and digits < 12:
        digits += 1
    return si(a, "B", digits=digits), si(b, "B", digits=digits)


def fmt_int(value: int) -> str:
    """An exact integer with thousands separators: ``6,672,212,480``."""
    return f"{value:,}"


def fmt_count(value: float) -> str:
    """A count that may be large (kernels, calls): exact below a million, SI above."""
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return si(value, "").strip()


def fmt_ms(seconds: float) -> str:
    """A duration given in seconds, shown in ms (``us`` below 0.1 ms, ``ns`` below 0.1 us, ``s`` from 10 s)."""
    if seconds == 0:
        return "0 ms"
    if abs(seconds) < 1e-7:
        return f"{_sig(seconds * 1e9, 3)} ns"
    if abs(seconds) < 1e-4:
        return f"{_sig(seconds * 1e6, 3)} us"
    if abs(seconds) >= 10:
        return f"{_sig(seconds, 4)} s"
    return f"{_sig(seconds * 1e3, 4)} ms"


def fmt_ms_apart(a: float, b: float) -> tuple[str, str]:
    """:func:`fmt_ms` of two durations one sentence compares, in one unit: where :func:`fmt_ms` would give them two
    units and they are within a factor of 1,000, both in the smaller one's (``89.8 us -> 109.0 us``, not ``89.8 us ->
    0.1090 ms``; ``10,320 ms -> 6,199 ms``, not ``10.32 s -> 6,199 ms``) with the decimals that give the larger four
    significant figures; and with more decimals where two different durations would read the same."""
    shown = fmt_ms(a), fmt_ms(b)
    small, large = sorted((abs(a), abs(b)))
    units = {text.rsplit(" ", 1)[1] for text in shown}
    if small == 0 or large >= 1000 * small or (len(units) == 1 and (shown[0] != shown[1] or a == b)):
        return shown
    unit = fmt_ms(small).rsplit(" ", 1)[1]
    factor = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    decimals = max(0, 3 - math.floor(math.log10(large * factor)))
    while f"{a * factor:,.{decimals}f}" == f"{b * factor:,.{decimals}f}" and a != b and decimals < 12:
        decimals += 1
    return f"{a * factor:,.{decimals}f} {unit}", f"{b * factor:,.{decimals}f} {unit}"


def fmt_ms_column(seconds: Sequence[float]) -> list[str]:
    """Durations of one table column in one unit with one number of decimals (never ``0.1837 ms`` beside
    ``91.8 us``): ms, or us when every value is below 0.1 ms; decimals so the smallest non-zero value keeps three
    significant digits (at most 3, at least 0 when every value is 100 or more)."""
    values = [abs(v) for v in seconds if v]
    if not values:
        return ["0 ms" for _ in seconds]
    unit, factor = ("us", 1e6) if max(values) < 1e-4 else ("ms", 1e3)
    smallest = min(values) * factor
    decimals = min(3, max(0, 2 - math.floor(math.log10(smallest))))
    return [f"{v * factor:,.{decimals}f} {unit}" for v in seconds]


def plural(count: int, noun: str) -> str:
    """``1 token``, ``512 tokens``, ``0 decode steps`` (thousands separated)."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def fmt_share(fraction: float) -> str:
    """A fraction as a percentage with one decimal: ``42.0%`` (``<0.1%`` for tiny non-zero shares)."""
    if 0 < fraction < 0.0005:
        return "<0.1%"
    return f"{fraction * 100:.1f}%"


def fmt_signed_pct(fraction: float) -> str:
    """A relative change as a signed percentage: ``+1.25%``, ``-0.03%``."""
    return f"{fraction * 100:+.2f}%"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, align: str = "") -> str:
    """A GitHub Markdown table; ``align`` has one letter per column (``l`` or ``r``; default: first left, rest right).

    Pipes inside cells are escaped so a cell never splits the row.
    """
    spec = align or "l" + "r" * (len(header) - 1)
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in spec) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
