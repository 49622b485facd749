"""The memory sections of the validation page: per-stage rows, the largest-batch arithmetic, published figures."""

from __future__ import annotations

from collections.abc import Callable

from attrs import evolve

from llm_perf_opt.hardware import get_device
from llm_perf_opt.measure.compare import compare_memory
from llm_perf_opt.measure.memory_md import BUDGET_DEVICE, PUBLISHED, memory_sections, memory_status
from llm_perf_opt.measure.record import MEMORY_STAGES, Measurement, MemoryRecord, StageMemory
from llm_perf_opt.perf.memory import ProcessOverhead, largest_batch

Factory = Callable[..., Measurement]


def _measured(factory: Factory) -> Measurement:
    peaks = {"vision": 4_000_000, "projector": 1_000_000, "prefill": 2_000_000, "decode": 500_000}
    stages = tuple(StageMemory(stage=s, peak_bytes=peaks[s]) for s in MEMORY_STAGES)
    return evolve(
        factory(),
        memory=MemoryRecord(method="live-bytes", weights_bytes=6_000_000_000, kv_cache_bytes=100_000, stages=stages),
    )


def test_rows_status_and_largest_batch(measurement_factory: Factory) -> None:
    m = _measured(measurement_factory)
    predicted = {"vision": 4_300_000, "projector": 1_000_000, "prefill": 1_700_000, "decode": 500_000}
    rows = compare_memory(predicted, m)
    assert [round(r.rel_error or 0.0, 3) for r in rows] == [0.075, 0.0, -0.15, 0.0]
    assert memory_status({m.run_id: rows}) == [
        "- Peak memory goal, every stage within +-10%: 3/4 stage peaks of 1 measurement(s)."
    ]
    text = "\n".join(memory_sections([m], {m.run_id: rows}))
    assert "| vision | 4.3 | 4.0 | +7.5% |" in text
    assert "| prefill | 1.7 | 2.0 | -15.0% |" in text
    # per sequence: the highest stage peak (vision); batch from the budget inequality with the default overhead
    budget = get_device(BUDGET_DEVICE).memory_capacity_bytes
    b_pred = largest_batch(M=budget, W=6_000_000_000, m_seq=4_300_000, overhead=ProcessOverhead())
    b_meas = largest_batch(M=budget, W=6_000_000_000, m_seq=4_000_000, overhead=ProcessOverhead())
    assert b_pred < b_meas
    assert f"| 4.3 / 4.0 | {b_pred:,} | {b_meas:,} |" in text


def test_a_page_without_memory_says_so() -> None:
    assert "no measurement records memory" in memory_status({})[0]


def test_published_figures_match_where_the_quantity_is_exact() -> None:
    by_quantity = {f.quantity: f for f in PUBLISHED}
    weights = by_quantity["weights resident after loading (bf16)"]
    assert abs(weights.predicted_value / weights.published_value - 1) < 0.001  # 6.2140 vs 6.2162 GiB
    tokens = by_quantity["KV-cache tokens in the pool"]
    assert tokens.predicted_value == tokens.published_value == 831_872
    assert all(f.source.startswith("https://") for f in PUBLISHED)


def test_the_page_asks_for_gpu_memory_until_a_gpu_file_has_it(measurement_factory: Factory) -> None:
    cpu = _measured(measurement_factory)
    rows = {cpu.run_id: compare_memory(dict.fromkeys(MEMORY_STAGES, 1), cpu)}
    assert "No GPU measurement records memory yet" in "\n".join(memory_sections([cpu], rows))
    gpu = evolve(cpu, run_id="gpu-1", device=evolve(cpu.device, runtime="cuda", device_id="h100-sxm"))
    rows[gpu.run_id] = compare_memory(dict.fromkeys(MEMORY_STAGES, 1), gpu)
    text = "\n".join(memory_sections([cpu, gpu], rows))
    assert "No GPU measurement" not in text and "| `gpu-1` |" in text
