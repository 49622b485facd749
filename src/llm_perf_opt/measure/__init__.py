"""Measured validation: run the built-in model for real, record stage timings, compare with predictions.

``record`` (the measurement file) and ``compare`` (ratios, compatibility) are torch-free and re-exported here;
``harness`` runs the model and imports torch, so import it explicitly (``llm_perf_opt.measure.harness``).
"""

from llm_perf_opt.measure.compare import StageComparison, StageRatio, check_compatible, compare
from llm_perf_opt.measure.record import (
    Measurement,
    MeasurementError,
    StageTimings,
    WorkloadRecord,
    load_measurement,
    save_measurement,
)

__all__ = [
    "Measurement",
    "MeasurementError",
    "StageComparison",
    "StageRatio",
    "StageTimings",
    "WorkloadRecord",
    "check_compatible",
    "compare",
    "load_measurement",
    "save_measurement",
]
