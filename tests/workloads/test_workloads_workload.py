"""Workload construction, validation, profile round trips and generation semantics."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.contracts.analytic import OCRWorkloadProfile
from llm_perf_opt.errors import UnknownIdError, WorkloadError
from llm_perf_opt.workloads import MAX_PAGE_SIDE_PX, MODES, Workload, profile_from_workload


def _profile(**changes: object) -> OCRWorkloadProfile:
    base = OCRWorkloadProfile(
        profile_id="p",
        description="test",
        seq_len=703,
        base_size=1024,
        image_size=640,
        crop_mode=True,
        max_new_tokens=512,
        doc_kind="synthetic",
        num_pages=1,
        page_width=1024,
        page_height=1024,
    )
    return attrs.evolve(base, **changes)


def test_create_defaults() -> None:
    w = Workload.create(mode="gundam", page=(1024, 1024))
    assert (w.prompt_tokens, w.max_new_tokens, w.batch_size, w.num_pages) == (9, 512, 1, 1)
    assert w.mode is MODES["gundam"] and w.page == (1024, 1024)
    assert w.describe() == "gundam 1024x1024 px, grid 2x2, 693 image + 9 prompt tokens, S=703, N=512, batch 1"
    # a page no larger than a crop has no crops: upstream's 1x1 crop ratio is not one crop (the report's table says
    # "none (global view only)" too)
    small = Workload.create(mode="gundam", page=(640, 480))
    assert small.num_crops == 0
    assert small.describe().startswith("gundam 640x480 px, no crops (global view only), 273 image")


def test_workload_is_frozen() -> None:
    w = Workload.create(mode="base", page=(800, 600))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        w.page_width = 10  # type: ignore[misc]


def test_generation_semantics() -> None:
    w = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=512)
    S = 703
    assert w.decode_steps == 512 - 1
    assert w.cached_len_at_step(1) == S  # step 1 starts with the prefill cache
    assert w.kv_len_at_step(1) == S + 1  # model-facts §3.7: decode step ctx 704
    assert w.kv_len_at_step(511) == S + 511
    assert w.final_kv_len == S + 512 - 1 == w.kv_len_at_step(w.decode_steps)


def test_single_token_generation_has_no_decode_step() -> None:
    w = Workload.create(mode="tiny", page=(512, 512), max_new_tokens=1)
    assert (w.decode_steps, w.final_kv_len) == (0, 83)
    with pytest.raises(WorkloadError, match=r"decode step 1 is out of range; this workload has steps 1\.\.0"):
        w.kv_len_at_step(1)


@pytest.mark.parametrize("step", [0, 512, -1])
def test_step_out_of_range(step: int) -> None:
    w = Workload.create(mode="gundam", page=(1024, 1024), max_new_tokens=512)
    with pytest.raises(WorkloadError, match=f"decode step {step} is out of range; this workload has steps 1..511"):
        w.kv_len_at_step(step)


def test_unknown_mode() -> None:
    with pytest.raises(UnknownIdError, match=r"unknown resolution mode 'gundam-x'; expected one of: base, gundam,"):
        Workload.create(mode="gundam-x", page=(1024, 1024))


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ((0, 1024), "page width must be an integer in 1..20000, got 0 px"),
        ((1024, -5), "page height must be an integer in 1..20000, got -5 px"),
        ((20_001, 1024), "page width must be an integer in 1..20000, got 20001 px (a side above 20000 px is 1.7 m"),
        ((1024.0, 1024), "page width must be an integer in 1..20000, got 1024.0 px"),
    ],
)
def test_bad_page(page: tuple[int, int], message: str) -> None:
    with pytest.raises(WorkloadError) as info:
        Workload.create(mode="gundam", page=page)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_page_must_be_a_pair() -> None:
    with pytest.raises(WorkloadError, match=r"page must be a \(width, height\) pair in px, got \(1024,\)"):
        Workload.create(mode="gundam", page=(1024,))  # type: ignore[arg-type]


def test_max_side_is_accepted() -> None:
    assert Workload.create(mode="gundam", page=(MAX_PAGE_SIDE_PX, 1)).grid == (9, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_new_tokens", 0, "max new tokens must be an integer >= 1, got 0"),
        ("prompt_tokens", -1, "prompt tokens must be an integer >= 0, got -1"),
        ("batch_size", 0, "batch size must be an integer >= 1, got 0"),
        ("num_pages", 0, "num pages must be an integer >= 1, got 0"),
    ],
)
def test_bad_counts(field: str, value: int, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        Workload.create(mode="gundam", page=(1024, 1024), **{field: value})  # type: ignore[arg-type]


def test_from_profile_standard() -> None:
    w = Workload.from_profile(_profile())
    assert (w.mode.name, w.grid, w.image_tokens, w.seq_len, w.profile_id) == ("gundam", (2, 2), 693, 703, "p")


def test_from_profile_rejects_contradicting_seq_len() -> None:
    with pytest.raises(WorkloadError) as info:
        Workload.from_profile(_profile(seq_len=700))
    text = str(info.value)
    assert "seq_len 700" in text and "gives 703" in text and "grid 2x2" in text and "693 image tokens" in text


def test_from_profile_checks_named_mode_against_sizes() -> None:
    with pytest.raises(WorkloadError, match=r"names mode base .* but sets base_size 1024, image_size 640"):
        Workload.from_profile(_profile(mode="base"))
    with pytest.raises(UnknownIdError, match="unknown resolution mode 'nope'"):
        Workload.from_profile(_profile(mode="nope"))


def test_from_profile_finds_mode_by_sizes() -> None:
    w = Workload.from_profile(_profile(base_size=1024, image_size=1024, crop_mode=False, seq_len=283))
    assert w.mode is MODES["base"]


def test_from_profile_custom_mode() -> None:
    w = Workload.from_profile(_profile(base_size=768, image_size=768, crop_mode=False, seq_len=1 + 12 * 13 + 1 + 9))
    assert (w.mode.name, w.image_tokens) == ("custom", 12 * 13 + 1)


def test_from_profile_without_page_infers_it_from_seq_len() -> None:
    w = Workload.from_profile(_profile(page_width=None, page_height=None, seq_len=913))
    assert (w.page, w.grid, w.seq_len) == ((1280, 1920), (2, 3), 913)
    base = Workload.from_profile(
        _profile(page_width=None, page_height=None, base_size=1024, image_size=1024, crop_mode=False, seq_len=283)
    )
    assert base.page == (1024, 1024)


def test_from_profile_without_page_and_impossible_seq_len() -> None:
    with pytest.raises(WorkloadError, match=r"seq_len 704 matches no crop grid of mode gundam \(possible: 283, 493,"):
        Workload.from_profile(_profile(page_width=None, page_height=None, seq_len=704))


def test_from_profile_with_half_a_page() -> None:
    with pytest.raises(WorkloadError, match="sets only one of page_width/page_height"):
        Workload.from_profile(_profile(page_height=None))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(MODES)),
    st.integers(1, 8000),
    st.integers(1, 8000),
    st.integers(0, 40),
    st.integers(1, 4096),
    st.integers(1, 8),
)
def test_profile_round_trip(mode: str, width: int, height: int, prompt: int, new: int, batch: int) -> None:
    w = Workload.create(
        mode=mode, page=(width, height), prompt_tokens=prompt, max_new_tokens=new, batch_size=batch, profile_id="x"
    )
    profile = profile_from_workload(w, profile_id="x", description="d", doc_kind="synthetic")
    assert profile.seq_len == w.seq_len
    assert Workload.from_profile(profile) == w
