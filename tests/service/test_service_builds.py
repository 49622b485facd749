"""What of an error message may reach a client."""

from __future__ import annotations

import pytest

from llm_perf_opt.service.builds import public_text


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("boom at /usr/lib/secret/site-packages/x.py:12\nframe #0: 0x7f00deadbeef", "boom at <path>:12"),
        ("c10 error at 0x7f00deadbeef in /opt/torch/lib/libc10.so", "c10 error at 0x… in <path>"),
        (
            "POST its request to /analytic/deepseek-ocr/run first",
            "POST its request to /analytic/deepseek-ocr/run first",
        ),
        ("see GET /openapi.yaml", "see GET /openapi.yaml"),
        ("x" * 1000, "x" * 399 + "…"),
        ("", ""),
    ],
)
def test_public_text_keeps_one_line_without_paths_or_addresses(message: str, expected: str) -> None:
    assert public_text(message) == expected
