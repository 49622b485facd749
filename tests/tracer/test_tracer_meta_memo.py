"""Remembered meta outputs equal torch's meta kernels, are fresh tensors, and are taken only where that is exact."""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import pytest
import torch
from torch import nn

from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer import meta_memo
from llm_perf_opt.tracer.fastmeta import verify_output
from llm_perf_opt.tracer.meta_memo import fresh_outputs, memo_key, memo_off, remember, remembered_output
from llm_perf_opt.tracer.trace import build_model, trace_workload
from llm_perf_opt.workloads import preset_workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

aten = torch.ops.aten


def _m(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


def _halves() -> tuple[torch.Tensor, torch.Tensor]:
    """The gate and up halves of a fused expert projection: strided, not dense."""
    gate, up = _m(5, 16).chunk(2, dim=-1)
    return gate, up


CASES = [  # the layouts the fast path leaves to torch (what a DeepSeek-OCR-2 trace runs most)
    ("silu of a chunked half", aten.silu.default, lambda: (_halves()[0],), {}),
    ("mul of a dense and a chunked half", aten.mul.Tensor, lambda: (_m(5, 8), _halves()[1]), {}),
    ("neg of a transposed tensor", aten.neg.default, lambda: (_m(2, 6, 3, 4).transpose(1, 2),), {}),
    ("add of a transposed and a dense", aten.add.Tensor, lambda: (_m(2, 6, 3, 4).transpose(1, 2), _m(2, 3, 6, 4)), {}),
    ("mul of a size-1 dim with an odd stride", aten.mul.Tensor, lambda: (_m(1, 8), _m(4, 16)[:1, :8]), {}),
    ("cat of transposed rank-4 halves", aten.cat.default, lambda: ([_m(2, 6, 3, 4).transpose(1, 2)] * 2, -1), {}),
    ("topk (two outputs)", aten.topk.default, lambda: (_m(7, 64, dtype=torch.float32), 6), {}),
    ("copy to another dtype", aten._to_copy.default, lambda: (_m(4, 6).t(),), {"dtype": torch.float32}),
]


@pytest.fixture
def empty_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meta_memo, "_MEMO", {})


@pytest.mark.parametrize(("name", "func", "make", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_a_remembered_output_is_laid_out_as_the_kernel_lays_out_a_new_call(
    empty_memo: None, name: str, func: Any, make: Any, kwargs: dict[str, Any]
) -> None:
    first = make()
    key = memo_key(func, first, kwargs)
    assert key is not None, name
    assert remembered_output(key) is None
    remember(key, first, kwargs, func(*first, **kwargs))
    again = make()  # new operands, the same layouts: the same key
    assert memo_key(func, again, kwargs) == key
    served = remembered_output(key)
    assert served is not None
    verify_output(func, served, func(*again, **kwargs))
    assert fresh_outputs(served, again, kwargs)


def test_the_key_holds_every_layout_and_argument(empty_memo: None) -> None:
    gate, up = _halves()
    base = memo_key(aten.mul.Tensor, (gate, up), {})
    assert base != memo_key(aten.mul.Tensor, (gate.contiguous(), up), {})  # strides
    assert base != memo_key(aten.mul.Tensor, (gate.float(), up), {})  # dtype
    assert base != memo_key(aten.mul.Tensor, (_m(6, 16).chunk(2, dim=-1)[0], _m(6, 8)), {})  # shape
    assert base != memo_key(aten.add.Tensor, (gate, up), {})  # op
    assert memo_key(aten.add.Tensor, (gate, up), {"alpha": 2}) != memo_key(aten.add.Tensor, (gate, up), {"alpha": 2.0})
    assert memo_key(aten.mul.Tensor, (gate, up), {}) == base  # the storage offset of a slice does not matter
    ints = (_m(3, dtype=torch.long), 0.5)
    before = memo_key(aten.mul.Scalar, ints, {})
    torch.set_default_dtype(torch.float64)
    try:
        assert memo_key(aten.mul.Scalar, ints, {}) != before  # an integer tensor times 0.5: the default dtype
    finally:
        torch.set_default_dtype(torch.float32)


def test_nothing_is_remembered_where_the_layout_is_not_all_that_decides() -> None:
    x = _m(4, 6)
    assert memo_key(aten.t.default, (x,), {}) is None  # a view: it aliases its operand
    assert memo_key(aten.add_.Tensor, (x, x), {}) is None  # writes an operand
    assert memo_key(aten.nonzero.default, (x,), {}) is None  # its output shape depends on data
    assert memo_key(aten.mul.Tensor, (x, torch.empty(4, 6, dtype=torch.bfloat16)), {}) is None  # a real operand
    assert memo_key(aten.mul.Tensor, (_m(3, dtype=torch.complex64), _m(3, dtype=torch.complex64)), {}) is None
    assert memo_key(aten.mul.Scalar, (x, float("nan")), {}) is None  # never equal to itself: never found again
    index, values = torch.empty(2, 0, dtype=torch.long, device="meta"), torch.empty(0, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: sparse invariant checks are off by default
        sparse = torch.sparse_coo_tensor(index, values, (4, 6), device="meta")
    assert memo_key(aten.mul.Tensor, (sparse, sparse), {}) is None  # no strides to describe it by
    with memo_off():
        assert memo_key(aten.mul.Tensor, (x, x), {}) is None


def test_an_output_sharing_a_storage_is_not_remembered(empty_memo: None) -> None:
    x = _m(4, 6)
    assert not fresh_outputs(x[1:], (x,), {})  # an operand's storage
    assert not fresh_outputs((x, x), (), {})  # two outputs, one storage
    assert not fresh_outputs(_m(4, 6)[1:], (), {})  # at an offset
    key = memo_key(aten.mul.Tensor, (x, x), {})
    assert key is not None
    remember(key, (x, x), {}, x)  # as if the kernel had handed back its operand
    assert remembered_output(key) is None


def test_the_memo_starts_over_past_its_limit(empty_memo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meta_memo, "MEMO_LIMIT", 2)
    keys = []
    for n in (2, 3, 4):
        args = (_m(n), _m(n))
        keys.append(key := memo_key(aten.mul.Tensor, args, {}))
        assert key is not None
        remember(key, args, {}, aten.mul.Tensor(*args))
    assert [remembered_output(k) is not None for k in keys] == [False, False, True]


@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_a_trace_with_the_memo_equals_one_without(attention: str) -> None:
    source = resolve_model_source("deepseek-ocr-v1-tiny")
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=5, batch_size=2)
    model = build_model(source, attention=attention)  # type: ignore[arg-type]
    with memo_off():
        plain = trace_workload(source, work, attention=attention, model=model)  # type: ignore[arg-type]
    remembered = trace_workload(source, work, attention=attention, model=model)  # type: ignore[arg-type]
    assert remembered == plain


def test_ocr2_trace_verifies_every_remembered_output(ocr2: tuple[Any, nn.Module]) -> None:
    """DeepSeek-OCR-2 runs torch's Python meta kernels (transformers loads them): most of its slow-path ops are
    served from the memo after the first decoder layer, and each is checked against the kernel here."""
    source, model = ocr2
    work = Ocr2Workload.create(page=(1024, 1024), max_new_tokens=3)
    with memo_off():
        plain = trace_workload(source, work, model=model)
    checked = trace_workload(source, work, model=model, verify_fast_meta=True)
    assert checked == plain
