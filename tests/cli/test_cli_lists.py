"""Comma-separated flag values: stripped, in order, none or a repeat refused with the flag named."""

from __future__ import annotations

import pytest

from llm_perf_opt.cli.lists import comma_values, distinct
from llm_perf_opt.errors import UserError


def test_values_keep_their_order_and_lose_blanks() -> None:
    assert comma_values(" h100-sxm, a100-80gb ,,l4", "--device") == ["h100-sxm", "a100-80gb", "l4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" , ", r"--device needs at least one value \(comma-separated\), got ' , '"),
        ("l4,t4,l4", "--device lists l4 twice"),
    ],
)
def test_none_or_a_repeat_is_one_line_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        comma_values(text, "--device")


def test_parsed_values_repeat_by_value() -> None:
    assert distinct([1, 8], "--batch", "1,8") == [1, 8]
    with pytest.raises(UserError, match=r"--batch lists 8 twice: '8,08'"):
        distinct([8, 8], "--batch", "8,08")
    with pytest.raises(UserError, match=r"--page lists 1024x1024 twice"):
        distinct([(1024, 1024), (1024, 1024)], "--page", "1024x1024,1024X1024")
