"""The fast meta outputs equal torch's meta kernels (shape, dtype, strides), and fall back when unsure."""

from __future__ import annotations

import attrs
import pytest
import torch

from llm_perf_opt.errors import TraceError
from llm_perf_opt.sources import resolve_model_source
from llm_perf_opt.tracer.fastmeta import fast_output, verify_output
from llm_perf_opt.tracer.trace import trace_workload
from llm_perf_opt.workloads import preset_workload

aten = torch.ops.aten


def _m(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


CASES = [
    (aten.add.Tensor, (_m(2, 3, 4), _m(4)), {}),
    (aten.mul.Tensor, (_m(2, 3, 4), _m(2, 1, 4, dtype=torch.float32)), {}),
    (aten.mul.Scalar, (_m(3, 4), 0.5), {}),
    (aten.div.Tensor, (_m(3, dtype=torch.long), _m(3, dtype=torch.long)), {}),
    (aten.lt.Tensor, (_m(3, 4), _m(4)), {}),
    (aten.where.self, (_m(3, 4, dtype=torch.bool), _m(3, 4), _m(4, dtype=torch.float32)), {}),
    (aten.rsqrt.default, (_m(3, 4, dtype=torch.float32),), {}),
    (aten.mean.dim, (_m(2, 3, 4, dtype=torch.float32), [-1], True), {}),
    (aten.sum.dim_IntList, (_m(2, 3, 4), [0, 2]), {"dtype": torch.float32}),
    (aten._softmax.default, (_m(2, 5), -1, True), {}),
    (aten.native_layer_norm.default, (_m(2, 5, 8), [8], None, None, 1e-5), {}),
    (aten.native_layer_norm.default, (_m(1, 8, 4, 4).permute(0, 2, 3, 1), [8], _m(8), _m(8), 1e-6), {}),
    (aten.upsample_linear1d.default, (_m(1, 64, 127, dtype=torch.float32), [79], False, None), {}),
    (aten.addmm.default, (_m(6), _m(4, 5), _m(5, 6)), {}),
    (aten.bmm.default, (_m(2, 4, 5), _m(2, 5, 6)), {}),
    (aten.cat.default, ([_m(2, 3), _m(2, 5)], -1), {}),
    # below rank 4 the output is contiguous whatever the operands' strides: permuted, expanded, transposed, sliced
    (aten.cat.default, ([_m(4, 8, 16).permute(1, 0, 2), _m(16)[None, None, :].expand(8, 1, 16)], 1), {}),
    (aten.cat.default, ([_m(8, 16).t(), _m(16, 3)[:, ::2]], 1), {}),
    (aten.arange.start_step, (2, 11, 3), {"device": torch.device("meta")}),
    (aten.full.default, ([2, 3], 0), {"device": torch.device("meta")}),
    (aten.full.default, ([2, 3], 1.5), {"device": torch.device("meta")}),
    (aten.full.default, ([4], True), {"device": torch.device("meta")}),
    (aten.full.default, ([4], 1), {"dtype": torch.bfloat16, "device": torch.device("meta")}),
    (aten.embedding.default, (_m(100, 8), _m(2, 5, dtype=torch.long)), {}),
    (aten.embedding.default, (_m(100, 8), _m(5, dtype=torch.int32)), {}),
    (aten.index_put_.default, (_m(6, 4), [_m(3, dtype=torch.long)], _m(3, 4)), {}),
    (aten.new_zeros.default, (_m(2), [3, 4]), {}),
    (aten.new_zeros.default, (_m(2), [3]), {"dtype": torch.int64}),
    (aten.empty_like.default, (_m(2, 3, 4),), {}),
    (aten.empty_like.default, (_m(2, 3),), {"dtype": torch.float32, "memory_format": torch.preserve_format}),
    (aten.sort.default, (_m(4, 7), -1, True), {}),
    (aten._unsafe_view.default, (_m(6, 4), [2, 3, 4]), {}),
    (aten.convolution.default, (_m(1, 3, 32, 30), _m(8, 3, 4, 4), _m(8), [4, 4], [0, 0], [1, 1], False, [0, 0], 1), {}),
    (aten.convolution.default, (_m(2, 8, 9, 9), _m(8, 8, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1), {}),
    # a channels-last input: torch's meta kernel still gives a contiguous output
    (
        aten.convolution.default,
        (_m(1, 5, 5, 8).permute(0, 3, 1, 2), _m(4, 8, 1, 1), None, [1], [0], [1], False, [0], 1),
        {},
    ),
]


@pytest.mark.parametrize(("func", "args", "kwargs"), CASES, ids=[str(c[0]) for c in CASES])
def test_fast_output_matches_meta_kernel(func: object, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    fast = fast_output(func, args, kwargs)
    assert fast is not None
    verify_output(func, fast, func(*args, **kwargs))  # type: ignore[operator]


def test_falls_back_when_unsure() -> None:
    odd = _m(1, 4, 1, 16).as_strided((1, 4, 1, 16), (64, 16, 64, 1))  # a size-1 dim with an odd stride
    assert fast_output(aten.mul.Tensor, (odd, _m(16)), {}) is None
    assert fast_output(aten.neg.default, (_m(3, dtype=torch.long),), {}) is None  # integer unary: not handled
    assert fast_output(aten.add.Tensor, (_m(4, 3).t(), _m(3, 4)), {}) is None  # transposed operand
    channels_last = _m(1, 8, 4, 4).permute(0, 2, 3, 1)
    assert fast_output(aten.cat.default, ([channels_last, channels_last], 0), {}) is None  # rank 4: layout kept
    assert fast_output(aten.empty_like.default, (_m(4, 3).t(),), {}) is None  # strides kept: not handled
    transposed_conv = (_m(1, 4, 5, 5), _m(4, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1)
    assert fast_output(aten.convolution.default, transposed_conv, {}) is None
    assert fast_output(aten._unsafe_view.default, (_m(4, 6).t(), [24]), {}) is None  # no view fits
    with pytest.raises(TraceError, match="differs"):
        verify_output(aten.add.Tensor, _m(3, 4), _m(4, 3))


@pytest.mark.parametrize("attention", ["flash", "eager"])
def test_tiny_trace_verifies_every_fast_output(attention: str) -> None:
    work = attrs.evolve(preset_workload("dsocr-standard-v1"), max_new_tokens=5)
    result = trace_workload(
        resolve_model_source("deepseek-ocr-v1-tiny"), work, attention=attention, verify_fast_meta=True
    )  # type: ignore[arg-type]
    assert result.decode_method == "affine-fit"
