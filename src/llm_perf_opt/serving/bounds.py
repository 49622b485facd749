"""What bounds a decode iteration on a device: the floors a step cannot beat, from the analytic model's counts.

For ``n`` decoding sequences attending ``K`` keys in total, one step must at least

* read the decoder weights it touches: the dense part and shared experts every step, routed experts along the
  expected coverage ``E(1-(1-k/E)^n)`` (:func:`~llm_perf_opt.workloads.expected_distinct_experts`) - between the
  analytic one-token decode step (``k`` experts per layer) and the prefill pass (every expert);
* read the KV cache: ``K * kv_bytes_per_token`` (:func:`~llm_perf_opt.perf.memory.kv_bytes_per_token_for`);
* compute ``n`` times the matmul FLOPs of one analytic decode step.

``bandwidth floor = bytes / DRAM bandwidth``, ``compute floor = FLOPs / dense peak``. A simulated step within 1.5x of
the bandwidth floor is bandwidth bound; one whose compute floor is at least half of it is compute bound; anything
slower is launch bound (kernel launches, host and scheduler time set the pace).
"""

from __future__ import annotations

from attrs import evolve, frozen

from llm_perf_opt.analytic import analytic_costs, ocr2_analytic_costs
from llm_perf_opt.config.deepseek_ocr2 import DeepseekOCR2Config
from llm_perf_opt.hardware import DeviceSpec
from llm_perf_opt.perf.memory import kv_bytes_per_token_for
from llm_perf_opt.serving.memory import ModelConfig, decoder_of
from llm_perf_opt.workloads import Workload, expected_distinct_experts
from llm_perf_opt.workloads.ocr2 import Ocr2Workload

__all__ = ["DecodeFloors", "classify_step", "decode_floors"]


@frozen(kw_only=True)
class DecodeFloors:
    """Per-step counts of one analytic decode step and of a whole-model prefill, for the floors."""

    step_weight_bytes: int
    all_weight_bytes: int
    step_matmul_flops: int
    kv_bytes_per_token: int
    experts: int
    top_k: int

    def weight_bytes(self, n: int) -> float:
        """Weights read by a step of ``n`` sequences (expected expert coverage between k and E per layer)."""
        E, k = self.experts, self.top_k
        cover = (expected_distinct_experts(E=E, k=k, T=n) - k) / (E - k) if k < E else 1.0
        return self.step_weight_bytes + (self.all_weight_bytes - self.step_weight_bytes) * max(0.0, min(1.0, cover))


def decode_floors(config: ModelConfig, workload: Workload | Ocr2Workload, *, dtype: str = "bf16") -> DecodeFloors:
    """Counts from the analytic model of ``workload`` with one decode step."""
    probe = evolve(workload, max_new_tokens=2, batch_size=1)
    if isinstance(config, DeepseekOCR2Config) and isinstance(probe, Ocr2Workload):
        tree = ocr2_analytic_costs(config, probe)
    elif not isinstance(config, DeepseekOCR2Config) and isinstance(probe, Workload):
        tree = analytic_costs(config, probe)
    else:
        raise ValueError("the workload does not belong to the model")
    step, pre = tree["decode"].cost, tree["prefill"].cost
    dec = decoder_of(config)
    return DecodeFloors(
        step_weight_bytes=step.weight_bytes_read,
        all_weight_bytes=max(pre.weight_bytes_read, step.weight_bytes_read),
        step_matmul_flops=step.matmul_flops_executed,
        kv_bytes_per_token=kv_bytes_per_token_for(dec, dtype=dtype),
        experts=dec.n_routed_experts,
        top_k=dec.num_experts_per_tok,
    )


def classify_step(
    floors: DecodeFloors, device: DeviceSpec, *, dtype: str, n: int, keys: int, step_s: float
) -> tuple[str, str]:
    """``(bound, detail)`` of a simulated decode step of ``n`` sequences over ``keys`` keys taking ``step_s``."""
    bytes_ = floors.weight_bytes(n) + keys * floors.kv_bytes_per_token
    bw_s = bytes_ / device.memory_bandwidth_bytes_per_s
    flop_s = n * floors.step_matmul_flops / device.matmul_peak_flops(dtype)
    detail = (
        f"decode step of {n} sequences {step_s * 1e3:.2f} ms; bandwidth floor {bw_s * 1e3:.2f} ms "
        f"({bytes_ / 1e9:.2f} GB at {device.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s), compute floor "
        f"{flop_s * 1e3:.2f} ms"
    )
    if step_s <= 1.5 * bw_s:
        return "bandwidth", detail
    if flop_s >= 0.5 * step_s:
        return "compute", detail
    return "launch", detail
