"""Raw per-path counters: what grouping reads of several passes is what merging them gives, without the counters."""

from __future__ import annotations

from llm_perf_opt.core.counts import Counters
from llm_perf_opt.tracer.raw import RawTrace, call_shape


def _pass(calls: int, sig: str, chained: int) -> RawTrace:
    raw = RawTrace()
    raw.table[("decode", "model.layers.0", "linear", "aten.mm.default")] = Counters(matmul_flops=calls * 10, kernels=1)
    raw.calls[("decode", "model.layers.0")] = calls
    raw.calls[("decode", "model.layers.1")] = 1
    raw.sigs[("decode", "model.layers.0")] = dict.fromkeys(["mm", sig])
    raw.chain[("decode", "model.layers")] = [chained, 1]
    raw.peaks[("decode", "model.layers.0")] = calls
    return raw


def test_call_shape_merges_calls_signatures_and_chains_as_merge_does_and_leaves_the_counters_out() -> None:
    passes = [_pass(2, "add", 1), _pass(3, "mul", 4)]
    merged = RawTrace()
    for raw in passes:
        merged.merge(raw)
    shape = call_shape(passes)
    assert (shape.calls, shape.sigs, shape.chain) == (merged.calls, merged.sigs, merged.chain)
    assert shape.calls[("decode", "model.layers.0")] == 5
    assert list(shape.sigs[("decode", "model.layers.0")]) == ["mm", "add", "mul"]  # in order of first sight
    assert shape.chain[("decode", "model.layers")] == [5, 2]
    assert not shape.table and not shape.peaks
    assert passes[0].chain[("decode", "model.layers")] == [1, 1]  # the passes are left as they were
