"""Preset workload profiles: the standard one, derived seq_len, descriptions that match, lookup errors."""

from __future__ import annotations

import re

import pytest

from llm_perf_opt.contracts.analytic import OCRWorkloadProfile
from llm_perf_opt.errors import UnknownIdError
from llm_perf_opt.workloads import DEFAULT_PRESET_ID, PRESETS, Workload, get_preset, preset_workload


def test_standard_preset() -> None:
    p = PRESETS["dsocr-standard-v1"]
    assert DEFAULT_PRESET_ID == "dsocr-standard-v1"
    assert isinstance(p, OCRWorkloadProfile)
    assert (p.base_size, p.image_size, p.crop_mode, p.mode) == (1024, 640, True, "gundam")
    assert (p.page_width, p.page_height, p.prompt_tokens, p.batch_size) == (1024, 1024, 9, 1)
    assert (p.seq_len, p.max_new_tokens, p.doc_kind, p.num_pages) == (1 + 693 + 9, 512, "mixed_layout", 1)
    w = preset_workload("dsocr-standard-v1")
    assert (w.grid, w.image_tokens) == ((2, 2), 693)


@pytest.mark.parametrize(
    ("profile_id", "grid", "image_tokens", "seq_len"),
    [
        ("dsocr-a4-text-v1", (2, 3), 273 + 100 * 6 + 10 * 3, 913),
        ("dsocr-slide-v1", (4, 2), 273 + 100 * 8 + 10 * 2, 1103),
        ("dsocr-a4-300dpi-gundam-m-v1", (2, 3), 421 + 256 * 6 + 16 * 3, 2015),
        ("dsocr-base-v1", (1, 1), 273, 283),
        ("dsocr-tiny-v1", (1, 1), 73, 83),
    ],
)
def test_other_presets(profile_id: str, grid: tuple[int, int], image_tokens: int, seq_len: int) -> None:
    w = preset_workload(profile_id)
    assert (w.grid, w.image_tokens, w.seq_len) == (grid, image_tokens, seq_len)
    assert PRESETS[profile_id].seq_len == seq_len == 1 + image_tokens + 9


@pytest.mark.parametrize("profile_id", list(PRESETS))
def test_description_numbers_match_the_derived_ones(profile_id: str) -> None:
    p = PRESETS[profile_id]
    w = Workload.from_profile(p)
    assert p.profile_id == profile_id
    assert re.search(rf"\bS={w.seq_len}\b", p.description)
    assert re.search(rf"\b{w.image_tokens} image tokens\b", p.description)
    assert re.search(rf"\b{w.max_new_tokens} new tokens\b", p.description)
    cols, rows = w.grid
    assert (f"{cols}x{rows} crops" in p.description) == (w.num_crops > 0)
    assert f"{w.page_width}x{w.page_height}" in p.description


def test_doc_kinds_are_varied() -> None:
    assert {p.doc_kind for p in PRESETS.values()} == {"text_heavy", "mixed_layout", "image_rich", "synthetic"}


def test_get_preset_returns_a_copy() -> None:
    copy = get_preset("dsocr-standard-v1")
    copy.max_new_tokens = 1
    assert PRESETS["dsocr-standard-v1"].max_new_tokens == 512


def test_unknown_preset_lists_ids() -> None:
    with pytest.raises(UnknownIdError) as info:
        get_preset("dsocr-nope")
    assert str(info.value).startswith("unknown workload profile 'dsocr-nope'; expected one of: dsocr-a4-300dpi")
    assert all(pid in str(info.value) for pid in PRESETS)


def test_presets_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["x"] = PRESETS["dsocr-standard-v1"]  # type: ignore[index]
