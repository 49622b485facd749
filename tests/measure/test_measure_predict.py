"""The cost tree of a measurement: its workload re-created, traced with the decoder attention that ran."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve

from llm_perf_opt.measure.predict import cost_tree, workload_of
from llm_perf_opt.measure.record import Measurement, MeasurementError, save_measurement

Factory = Callable[..., Measurement]


def test_workload_is_recreated_from_the_record(measurement_factory: Factory) -> None:
    w = workload_of(measurement_factory())
    assert (w.mode.name, w.page, w.seq_len, w.max_new_tokens, w.batch_size) == ("tiny", (512, 512), 83, 4, 1)


def test_a_record_that_no_longer_resolves_is_refused(measurement_factory: Factory) -> None:
    m = measurement_factory()
    with pytest.raises(MeasurementError, match="records S=84 but its page and mode give S=83"):
        workload_of(evolve(m, workload=evolve(m.workload, seq_len=84)))
    with pytest.raises(MeasurementError, match="not a named mode"):
        workload_of(evolve(m, workload=evolve(m.workload, mode="custom")))


def test_eager_and_sdpa_trees_differ_only_in_decoder_attention(measurement_factory: Factory) -> None:
    eager = cost_tree(measurement_factory(attention="eager"))
    sdpa = cost_tree(measurement_factory(attention="sdpa"))
    # SAM and CLIP call the fused SDPA op either way: identical vision
    assert eager["vision"].by_category == sdpa["vision"].by_category
    # the projector stage also holds the eager prefill's additive causal mask (built after the image injection)
    assert eager["projector"].by_category["linear"] == sdpa["projector"].by_category["linear"]
    eager_kernels = sum(c.kernels for c in eager["projector"].by_category.values())
    assert eager_kernels > sum(c.kernels for c in sdpa["projector"].by_category.values())
    # eager decoder attention: explicit matmuls, scale, fp32 softmax, casts - more kernels than one fused call
    for stage in ("prefill", "decode"):
        assert eager[stage].by_category["attention"].kernels > sdpa[stage].by_category["attention"].kernels
        assert eager[stage].by_category["linear"] == sdpa[stage].by_category["linear"]


def test_files_of_one_workload_share_one_trace_and_later_runs_trace_nothing(
    measurement_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_perf_opt.measure import meta_trace, predict

    calls: list[str] = []
    real = meta_trace.trace_workload

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("trace")
        return real(*args, **kwargs)

    monkeypatch.setattr(meta_trace, "trace_workload", counting)
    predict.forget_traces()  # earlier tests traced this workload in this process
    first = measurement_factory()
    other_run = evolve(first, run_id="another-run", workload=evolve(first.workload, workload_id="renamed"))
    assert cost_tree(first) == cost_tree(other_run)
    assert calls == ["trace"]
    predict.forget_traces()  # a new process: only the trace cache on disk remains
    assert cost_tree(first) == cost_tree(other_run)
    assert calls == ["trace"]


def test_a_cached_trace_is_read_without_importing_torch(measurement_factory: Factory, tmp_path: Path) -> None:
    from llm_perf_opt.measure import predict

    m = measurement_factory()
    save_measurement(m, tmp_path / "m.json")
    predict.forget_traces()
    cost_tree(m)  # now in this test's trace cache, which the child process shares ($LLM_PERF_OPT_CACHE_DIR)
    code = (
        "import sys\nfrom llm_perf_opt.measure.predict import cost_tree\n"
        "from llm_perf_opt.measure.record import load_measurement\n"
        f"cost_tree(load_measurement({str(tmp_path / 'm.json')!r})); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
