"""Everything one analysis produced, in one torch-free object that every renderer reads.

Built by :func:`llm_perf_opt.analysis.pipeline.run_analysis`; rendered by the JSON/YAML/Markdown/plot/layer-page
writers.  Renderers never recompute a number: what they show is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from llm_perf_opt.analysis.options import AnalysisOptions
from llm_perf_opt.config import DeepseekOCRConfig
from llm_perf_opt.contracts import DeepSeekOCRAnalyticModel, DeepSeekOCRAnalyticReportSummary
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.hardware import DeviceSpec
from llm_perf_opt.perf import CapacityCheck, DeviceProfile, MemoryFootprint, StageTimes, Throughput, TimedTree
from llm_perf_opt.runtimes.request import RuntimeRun
from llm_perf_opt.tracer.result import TraceResult
from llm_perf_opt.workloads import RoutingModel, Workload
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["AnalysisResult"]


@frozen(kw_only=True)
class AnalysisResult:
    """One analysis: inputs as resolved, the trace, the analytic model, validation, time, memory and contracts."""

    options: AnalysisOptions = field(metadata={"help": "the request as given"})
    report_id: str = field(metadata={"help": "derived from the options (report_id_for)"})
    model_source: str = field(metadata={"help": "model source id and how it was obtained"})
    config: DeepseekOCRConfig = field(metadata={"help": "model configuration that was traced"})
    workload: Workload | Ocr2Workload = field(
        metadata={"help": "resolved workload (page, grid, tokens, S, N, batch); DeepSeek-OCR-2's for that source"}
    )
    device: DeviceSpec = field(metadata={"help": "catalog device that times the model"})
    dtype: str = field(metadata={"help": "normalised dtype"})
    routing: RoutingModel = field(metadata={"help": "MoE routing model"})
    profile: DeviceProfile = field(metadata={"help": "efficiencies and per-kernel overhead used for time"})
    trace: TraceResult = field(metadata={"help": "traced tree, op ledger, unsupported ops, uncalled modules"})
    analytic: CostTree = field(metadata={"help": "the analytic model's cost tree (inclusive nodes by module id)"})
    validation: Mapping[str, Any] = field(metadata={"help": "validation.json payload (stages, nodes, divergences)"})
    validation_summary: Mapping[str, Any] = field(metadata={"help": "pass/fail counts and the worst node"})
    timed: TimedTree = field(metadata={"help": "predicted seconds per node and per stage"})
    stages: StageTimes = field(metadata={"help": "vision/projector/prefill/decode seconds, TTFT, TPOT, end-to-end"})
    memory: MemoryFootprint = field(metadata={"help": "weights, KV cache (final length), peak activations"})
    capacity: CapacityCheck = field(metadata={"help": "fits the device? max batch"})
    throughput: Throughput = field(metadata={"help": "tokens/s, pages/s, pages/day at the batch size"})
    model: DeepSeekOCRAnalyticModel = field(metadata={"help": "model.json contract"})
    summary: DeepSeekOCRAnalyticReportSummary = field(metadata={"help": "summary.json contract"})
    measured: Mapping[str, Any] | None = field(
        default=None, metadata={"help": "per-stage predicted vs measured (when --measured was given)"}
    )
    assumptions: tuple[str, ...] = field(default=(), metadata={"help": "one line per modelling assumption"})
    runtime_run: RuntimeRun | None = field(
        default=None, metadata={"help": "the request as the chosen runtime runs it (kernels, bounds, breakdown)"}
    )
    provenance: Mapping[str, Any] | None = field(
        default=None,
        metadata={"help": "remote-code sources: code hashes, Hub revision, meta adapters and their uses (as_dict)"},
    )

    @property
    def reads_profile(self) -> bool:
        """Whether the predicted stage times come through the device profile: hf-eager and hf-flash time the traced
        tree with it; the other runtimes' kernel models use their own constants (the profile then times only the
        eager per-module breakdown)."""
        return self.runtime_run is None or self.runtime_run.runtime.is_baseline

    @property
    def calibrated(self) -> bool:
        """Whether the predicted times are calibrated on this device (``Runtime.calibrated_by``; no runtime run:
        the op-by-op baseline's time)."""
        profile_device, device_id = self.profile.device_id, self.device.device_id
        if self.runtime_run is None:
            return profile_device == device_id
        return self.runtime_run.runtime.calibrated_by(profile_device=profile_device, device_id=device_id)
