"""Request mixes: prompt lengths from the crop rule, length files, repetition loops, checks at the door."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llm_perf_opt.errors import UserError
from llm_perf_opt.serving.requests import LengthDistribution, RequestMix, load_lengths


def test_a_page_request_prompts_bos_image_tokens_and_text() -> None:
    mix = RequestMix.pages(mode="base", page=(1024, 1024), prompt_tokens=9, output_tokens=100)
    spec = mix.draw(random.Random(0))
    assert spec.prompt_tokens == 1 + 273 + 9  # model-facts §3.5: Base 1024 -> 273 image tokens
    assert (spec.output_tokens, spec.image_tokens, spec.vision_key) == (100, 273, "base:1024x1024")


def test_text_only_requests_carry_no_page() -> None:
    spec = RequestMix(workload=None, prompt_tokens=50, output_tokens=10).draw(random.Random(0))
    assert (spec.prompt_tokens, spec.image_tokens, spec.vision_key) == (51, 0, "")


def test_looped_pages_generate_to_the_token_limit() -> None:
    mix = RequestMix.pages(mode="base", page=(1024, 1024), output_tokens=100, repetition_share=1.0)
    spec = mix.draw(random.Random(0))
    assert spec.looped and spec.output_tokens == 8192 - 283


def test_length_files_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "lengths.csv"
    csv_file.write_text("tokens,weight\n100,3\n900,1\n", encoding="utf-8")
    dist = load_lengths(csv_file)
    assert dist.values == (100, 900) and dist.weights == (3.0, 1.0) and dist.mean == (300 + 900) / 4
    json_file = tmp_path / "lengths.json"
    json_file.write_text('{"tokens": [5, 7]}', encoding="utf-8")
    assert load_lengths(json_file) == LengthDistribution(values=(5, 7), source=str(json_file))
    rng = random.Random(1)
    assert {dist.draw(rng) for _ in range(200)} == {100, 900}


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.csv", "length\n5\n", "'tokens' column"),
        ("a.csv", "tokens\nfive\n", "row 1"),
        ("a.csv", "tokens\n0\n", ">= 1"),
        ("a.json", "[1, 2]", "'tokens' list"),
        ("a.json", "{", "not valid JSON"),
        ("a.json", '{"tokens": [1], "weights": [1, 2]}', "'weights' has 2"),
        ("a.txt", "1", "must end in .csv or .json"),
    ],
)
def test_bad_length_files_are_one_line(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=match):
        load_lengths(path)


def test_mix_checks_share_and_lengths() -> None:
    with pytest.raises(UserError, match="repetition-share"):
        RequestMix.pages(mode="base", page=(1024, 1024), repetition_share=1.5).check()
    with pytest.raises(UserError, match="text-only requests have none"):
        RequestMix(workload=None, repetition_share=0.1).check()
    with pytest.raises(UserError, match="above max_model_len"):
        RequestMix.pages(mode="base", page=(1024, 1024), output_tokens=8000).check()
