"""Meta input builder: token layout, counts against the workloads package, decode steps, cache size, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.errors import WorkloadError
from llm_perf_opt.sources.deepseek_ocr_v1 import build_inputs, image_token_count, make_inputs
from llm_perf_opt.workloads import MODES, Workload, preset_workload

BASE = DeepseekOCRConfig.base()


def test_standard_preset_gives_the_torchinfo_layout() -> None:
    inputs = build_inputs(BASE, preset_workload("dsocr-standard-v1"))
    pre = inputs.prefill
    assert inputs.seq_len == 1 + 693 + 9  # 703
    assert pre.input_ids.shape == pre.images_seq_mask.shape == pre.position_ids.shape == (1, 703)
    assert {t.device.type for t in (pre.input_ids, pre.images_seq_mask, pre.position_ids)} == {"meta"}
    assert pre.image_grid == ((2, 2),)
    views = pre.images[0]
    assert views.crops is not None and views.crops.shape == (4, 3, 640, 640)
    assert views.global_view.shape == (1, 3, 1024, 1024)
    assert views.global_view.dtype == torch.bfloat16
    assert inputs.max_new_tokens == 512 and inputs.cache_len == 703 + 511


def test_layout_on_cpu_bos_image_block_then_text() -> None:
    inputs = build_inputs(BASE, preset_workload("dsocr-standard-v1"), device="cpu")
    ids, mask = inputs.prefill.input_ids[0], inputs.prefill.images_seq_mask[0]
    assert ids[0].item() == 0 and not mask[0]
    assert mask[1:694].all() and (ids[1:694] == 128815).all()  # positions 1..693: the image block
    assert not mask[694:].any() and not (ids[694:] == 128815).any()
    assert int(mask.sum()) == 693
    assert inputs.prefill.position_ids[0].tolist() == list(range(703))
    pixels = inputs.prefill.images[0].global_view
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0


def test_decode_steps_follow_the_generation_semantics() -> None:
    inputs = make_inputs(BASE, grid=(1, 1), num_crops=0, global_view_size=1024, crop_size=640, max_new_tokens=4)
    assert inputs.seq_len == 283 and inputs.num_decode_steps == 3
    for step in (1, 2, 3):
        d = inputs.decode_step(step)
        assert d.input_ids.shape == d.position_ids.shape == (1, 1)
        assert d.position_ids.device.type == "meta"
    cpu = make_inputs(
        BASE, grid=(1, 1), num_crops=0, global_view_size=1024, crop_size=640, max_new_tokens=4, device="cpu"
    )
    assert [cpu.decode_step(i).position_ids.item() for i in (1, 2, 3)] == [283, 284, 285]  # S + i - 1
    cache = inputs.new_cache()
    assert cache.max_len == 283 + 3 and cache.keys[0].shape == (1, 10, 286, 128)
    with pytest.raises(WorkloadError, match=r"decode step 4 is out of range; this workload has steps 1..3"):
        inputs.decode_step(4)


@pytest.mark.parametrize("mode", list(MODES))
def test_image_tokens_agree_with_the_workloads_package(mode: str) -> None:
    workload = Workload.create(mode=mode, page=(1240, 1754))
    inputs = build_inputs(BASE, workload)
    assert inputs.seq_len == workload.seq_len
    assert int(inputs.prefill.images_seq_mask.shape[1]) == workload.seq_len


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(sorted(MODES)),
    width=st.integers(min_value=1, max_value=6000),
    height=st.integers(min_value=1, max_value=6000),
)
def test_token_count_equals_workloads_for_random_pages(mode: str, width: int, height: int) -> None:
    workload = Workload.create(mode=mode, page=(width, height))
    count = image_token_count(
        BASE,
        grid=workload.grid,
        num_crops=workload.num_crops,
        global_view_size=workload.global_view_size,
        crop_size=workload.crop_size,
    )
    assert count == workload.image_tokens


def test_batch_rows_each_get_their_views() -> None:
    inputs = make_inputs(BASE, grid=(2, 1), num_crops=2, global_view_size=1024, crop_size=640, batch_size=3)
    assert len(inputs.prefill.images) == 3 and inputs.prefill.image_grid == ((2, 1),) * 3
    assert inputs.prefill.input_ids.shape == (3, 1 + 273 + 10 * (20 + 1) + 9)
    assert inputs.new_cache().keys[0].shape[0] == 3


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_batch_rows_are_one_row_repeated_in_dense_tensors(device: str) -> None:
    one = make_inputs(BASE, grid=(1, 1), num_crops=0, global_view_size=512, crop_size=640, device=device)
    many = make_inputs(BASE, grid=(1, 1), num_crops=0, global_view_size=512, crop_size=640, batch_size=4, device=device)
    for name in ("input_ids", "images_seq_mask", "position_ids"):
        row, rows = getattr(one.prefill, name), getattr(many.prefill, name)
        assert rows.shape == (4, row.shape[1]) and rows.dtype == row.dtype and rows.device.type == device
        assert rows.is_contiguous() and rows.stride() == (row.shape[1], 1)  # its own storage, not an expanded view
        if device == "cpu":
            assert all(torch.equal(r, row[0]) for r in rows)


def test_grid_and_crop_count_must_agree() -> None:
    with pytest.raises(WorkloadError, match=r"^crop grid 2x2 holds 4 crops, but num_crops is 3$"):
        make_inputs(BASE, grid=(2, 2), num_crops=3, global_view_size=1024, crop_size=640)


def test_a_workload_whose_seq_len_disagrees_with_the_model_is_rejected() -> None:
    class Odd:
        grid = (1, 1)
        num_crops = 0
        global_view_size = 1024
        crop_size = 640
        prompt_tokens = 9
        max_new_tokens = 1
        batch_size = 1
        seq_len = 300

    with pytest.raises(WorkloadError, match=r"workload seq_len 300 disagrees with the 283 tokens model deepseek-ocr"):
        build_inputs(BASE, Odd())
