"""Number formatting for the human report."""

from __future__ import annotations

from llm_perf_opt.report.humanize import (
    fmt_bytes,
    fmt_bytes_apart,
    fmt_count,
    fmt_flops,
    fmt_int,
    fmt_ms,
    fmt_ms_apart,
    fmt_share,
    md_table,
)


def test_si_prefixes_and_significant_figures() -> None:
    assert fmt_flops(1_469_826_000_000) == "1.47 TFLOP"  # model-facts §3.7 Base prefill
    assert fmt_flops(999.7e9) == "1.00 TFLOP"  # rounds up into the next prefix
    assert fmt_flops(235_000_000) == "235 MFLOP"
    assert fmt_bytes(6_672_212_480) == "6.67 GB"
    assert fmt_bytes(61_440) == "61.4 kB"
    assert fmt_bytes(0) == "0 B"


def test_times_integers_shares() -> None:
    assert fmt_ms(0.0456) == "45.60 ms"
    assert fmt_ms(1e-5) == "10.0 us"
    assert fmt_ms(12.3) == "12.30 s"
    assert fmt_ms(0) == "0 ms"
    assert fmt_ms(9.18e-10) == "0.918 ns"  # a sub-nanosecond compute part, not "0.000918 us"
    assert fmt_int(3_336_106_240) == "3,336,106,240"
    assert fmt_count(12) == "12" and fmt_count(1_234_567) == "1.23 M"
    assert fmt_share(0.42) == "42.0%" and fmt_share(0.0001) == "<0.1%" and fmt_share(0) == "0.0%"


def test_markdown_table_escapes_pipes() -> None:
    table = md_table(("a", "b"), [("x|y", "1")])
    assert table == "| a | b |\n|---|---:|\n| x\\|y | 1 |\n"


def test_two_amounts_one_sentence_compares_read_apart() -> None:
    """analyze --batch 115: 'Memory 80.0 GB at the peak: does not fit the 80.0 GB device' (22.1 MB over)."""
    assert fmt_bytes_apart(80.0221e9, 80.0e9) == ("80.02 GB", "80.00 GB")
    assert fmt_bytes_apart(6.71e9, 80.0e9) == ("6.71 GB", "80.0 GB")  # apart already: as fmt_bytes
    assert fmt_bytes_apart(80.0e9, 80.0e9) == ("80.0 GB", "80.0 GB")
    assert fmt_bytes_apart(80.0e9 + 1, 80.0e9) == ("80.000000001 GB", "80.000000000 GB")


def test_two_durations_compared_share_a_unit_and_read_apart() -> None:
    assert fmt_ms_apart(89.8e-6, 108.96e-6) == ("89.8 us", "109.0 us")  # fmt_ms: 89.8 us and 0.109 ms
    assert fmt_ms_apart(10.32, 6.199) == ("10,320 ms", "6,199 ms")  # fmt_ms: 10.32 s and 6,199 ms
    assert fmt_ms_apart(0.01197, 0.009859) == ("11.97 ms", "9.859 ms")  # one unit already: as fmt_ms
    assert fmt_ms_apart(0.073231, 0.073234) == ("73.231 ms", "73.234 ms")  # fmt_ms reads 73.23 ms twice
    assert fmt_ms_apart(0.07323, 0.07323) == ("73.23 ms", "73.23 ms")
    assert fmt_ms_apart(5e-6, 1.0) == ("5.00 us", "1,000 ms")  # 200,000x apart: each in its own unit
    assert fmt_ms_apart(0.0, 1e-3) == ("0 ms", "1.000 ms")
