"""Roofline time: hand-arithmetic goldens, properties, and tree timing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.errors import UnknownIdError, UserError
from llm_perf_opt.perf import CATEGORIES, DeviceProfile, Rates, group_time, roofline_time_s, time_tree
from llm_perf_opt.perf.roofline import overlapped_time_s

H100_BF16 = 989.4e12
H100_FP32 = 66.9e12
H100_BW = 3.35e12


def ideal(device: str = "h100-sxm", *, dtype: str = "bf16", overhead_s: float = 0.0) -> Rates:
    """Every efficiency 1.0: times are the bare bounds."""
    profile = DeviceProfile(
        source="test: ideal",
        category_efficiency=dict.fromkeys(CATEGORIES, 1.0),
        memory_efficiency=1.0,
        kernel_overhead_s=overhead_s,
    )
    return Rates.for_device(device, dtype=dtype, profile=profile)


# -- goldens ------------------------------------------------------------------------------------


def test_one_teraflop_matmul_on_h100_bf16() -> None:
    cost = Cost(matmul_flops=10**12, matmul_flops_executed=10**12, kernels=1)
    assert group_time(cost, "linear", ideal()).total_s == pytest.approx(1e12 / 989.4e12, rel=1e-12)


def test_vector_flops_run_at_the_fp32_cuda_core_rate() -> None:
    cost = Cost(vector_flops=669 * 10**11)  # 66.9e12 FLOPs
    assert group_time(cost, "norm", ideal()).compute_s == pytest.approx(66.9e12 / H100_FP32)  # 1.0 s


def test_bytes_at_memory_bandwidth() -> None:
    cost = Cost(bytes_read=3 * 10**12, bytes_written=35 * 10**10)  # 3.35e12 bytes
    g = group_time(cost, "elementwise", ideal())
    assert g.memory_s == pytest.approx(3.35e12 / H100_BW)  # 1.0 s
    assert g.bound == "memory"


def test_efficiencies_divide_the_peaks() -> None:
    profile = DeviceProfile(
        source="test", category_efficiency={"linear": 0.5}, memory_efficiency=0.8, kernel_overhead_s=0.0
    )
    rates = Rates.for_device("h100-sxm", profile=profile)
    cost = Cost(matmul_flops_executed=10**12, bytes_read=10**9)
    g = group_time(cost, "linear", rates)
    assert g.compute_s == pytest.approx(1e12 / (989.4e12 * 0.5))
    assert g.memory_s == pytest.approx(1e9 / (3.35e12 * 0.8))


def test_kernel_overhead_term() -> None:
    cost = Cost(kernels=1000)
    assert group_time(cost, "other", ideal(overhead_s=10e-6)).total_s == pytest.approx(1000 * 10e-6)  # 10 ms


def test_executed_not_dense_matmul_flops_feed_time() -> None:
    causal = Cost(matmul_flops=4 * 10**12, matmul_flops_executed=2 * 10**12)
    assert group_time(causal, "attention", ideal()).compute_s == pytest.approx(2e12 / H100_BF16)


def test_dtype_scales_peak_and_bytes() -> None:
    cost = Cost(matmul_flops_executed=10**12, bytes_read=10**9)
    fp8 = group_time(cost, "linear", ideal(dtype="fp8"))
    assert fp8.compute_s == pytest.approx(1e12 / 1978.9e12)
    assert fp8.memory_s == pytest.approx(0.5e9 / H100_BW)  # 1 byte per element instead of 2
    fp32 = group_time(cost, "linear", ideal(dtype="fp32"))
    assert fp32.compute_s == pytest.approx(1e12 / H100_FP32)
    assert fp32.memory_s == pytest.approx(2e9 / H100_BW)


# -- properties ---------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**15)
eff = st.floats(min_value=0.05, max_value=1.0)


@given(F_mm=counts, F_vec=counts, B=counts, K=st.integers(0, 10**5), eta_c=eff, eta_m=eff)
def test_time_at_least_both_bounds_and_equal_to_one_without_overhead(
    F_mm: int, F_vec: int, B: int, K: int, eta_c: float, eta_m: float
) -> None:
    args = {"P_mm": H100_BF16, "P_vec": H100_FP32, "W": H100_BW, "eta_c": eta_c, "eta_m": eta_m}
    compute = (F_mm / H100_BF16 + F_vec / H100_FP32) / eta_c
    memory = B / (H100_BW * eta_m)
    t = roofline_time_s(F_mm=F_mm, F_vec=F_vec, B=B, K=K, t_k=5e-6, **args)
    assert t >= compute and t >= memory
    bare = roofline_time_s(F_mm=F_mm, F_vec=F_vec, B=B, K=K, t_k=0.0, **args)
    assert bare in (compute, memory)


@given(F=counts, B=counts, dF=counts, dB=counts, K=st.integers(0, 10**4))
def test_time_non_decreasing_in_flops_and_bytes(F: int, B: int, dF: int, dB: int, K: int) -> None:
    args = {"F_vec": 0, "K": K, "P_mm": H100_BF16, "P_vec": H100_FP32, "W": H100_BW, "eta_c": 0.6}
    args |= {"eta_m": 0.8, "t_k": 1e-5}
    base = roofline_time_s(F_mm=F, B=B, **args)
    assert roofline_time_s(F_mm=F + dF, B=B, **args) >= base
    assert roofline_time_s(F_mm=F, B=B + dB, **args) >= base


@given(
    F=st.integers(10**9, 10**14),
    B=st.integers(0, 10**9),
    K=st.integers(0, 100),
    batch=st.integers(1, 64),
    category=st.sampled_from(CATEGORIES),
)
def test_time_linear_in_batch(F: int, B: int, K: int, batch: int, category: str) -> None:
    one = Cost(matmul_flops=F, matmul_flops_executed=F, bytes_read=B, kernels=K)
    rates = Rates.for_device("h100-sxm")
    t1 = group_time(one, category, rates).total_s
    assert group_time(one.scaled(batch), category, rates).total_s == pytest.approx(batch * t1, rel=1e-9)


# -- rates --------------------------------------------------------------------------------------


def test_rates_reject_unknown_device_and_dtype() -> None:
    with pytest.raises(UnknownIdError, match="h100-sxm"):
        Rates.for_device("h999")
    with pytest.raises(UnknownIdError, match="bf16, fp16, fp32, tf32"):
        Rates.for_device("a100-80gb", dtype="fp8")


def test_profile_for_another_device_is_rejected() -> None:
    profile = DeviceProfile(
        device_id="a100-80gb", source="calibration", category_efficiency={}, memory_efficiency=0.8, kernel_overhead_s=0
    )
    with pytest.raises(UserError, match=r"'a100-80gb'.*'h100-sxm'"):
        Rates.for_device("h100-sxm", profile=profile)
    assert Rates.for_device("a100-80gb", profile=profile).profile is profile


# -- trees --------------------------------------------------------------------------------------


def _categories() -> dict[str, dict[str, Cost]]:
    lin = Cost(matmul_flops=2 * 10**12, matmul_flops_executed=2 * 10**12, bytes_read=10**9, kernels=2)
    norm = Cost(vector_flops=10**9, bytes_read=67 * 10**8, kernels=1)  # 6.7e9 B: memory-bound
    own = Cost(bytes_read=335 * 10**7, kernels=3)  # 3.35e9 B run by the layer itself
    return {
        "root": {"linear": lin, "norm": norm, "elementwise": own},
        "prefill": {"linear": lin, "norm": norm, "elementwise": own},
        "prefill/model.layers.0": {"linear": lin, "norm": norm, "elementwise": own},
        "prefill/model.layers.0.mlp": {"linear": lin},
        "prefill/model.layers.0.norm": {"norm": norm},
    }


def _tree() -> CostTree:
    return CostTree.from_categories(_categories())


def test_tree_time_is_sum_of_leaf_rooflines() -> None:
    timed = time_tree(_tree(), ideal(overhead_s=1e-5))
    mlp = 2e12 / H100_BF16 + 2 * 1e-5  # compute-bound: 2e12 FLOPs vs 1e9 B
    norm = 6.7e9 / H100_BW + 1 * 1e-5  # memory-bound: 6.7e9 B (2 ms) vs 1e9 vector FLOPs (15 us)
    own = 3.35e9 / H100_BW + 3 * 1e-5  # the layer's own elementwise op
    assert timed.nodes["prefill/model.layers.0.mlp"].total_s == pytest.approx(mlp)
    assert timed.nodes["prefill/model.layers.0.norm"].total_s == pytest.approx(norm)
    layer = timed.nodes["prefill/model.layers.0"]
    assert layer.own_s == pytest.approx(own)
    assert layer.total_s == pytest.approx(mlp + norm + own)
    assert layer.compute_bound_s == pytest.approx(2e12 / H100_BF16)
    assert layer.memory_bound_s == pytest.approx((6.7e9 + 3.35e9) / H100_BW)
    assert layer.overhead_s == pytest.approx(6e-5)
    assert layer.by_category_s["norm"] == pytest.approx(norm)
    assert timed.total_s == pytest.approx(mlp + norm + own)
    assert timed.stage_s["prefill"] == pytest.approx(mlp + norm + own)
    assert timed.share("prefill/model.layers.0.mlp") == pytest.approx(mlp / (mlp + norm + own))


def test_top_nodes() -> None:
    timed = time_tree(_tree(), ideal())
    leaves = timed.top(2, leaves_only=True)
    assert [nid for nid, _ in leaves] == ["prefill/model.layers.0.mlp", "prefill/model.layers.0.norm"]
    assert timed.top(1, exclude=("root", "prefill"))[0][0] == "prefill/model.layers.0"


def test_children_costing_more_than_the_parent_is_an_error() -> None:
    categories = _categories()
    categories["prefill/model.layers.0.mlp"] = {"linear": Cost(kernels=99)}
    tree = CostTree.from_categories(categories)
    with pytest.raises(ValueError, match="kernels"):
        time_tree(tree, ideal())


def test_cycle_is_an_error() -> None:
    tree = CostTree.from_links({"a": ("b",), "b": ("a",)}, {})
    with pytest.raises(UserError, match=r"no root|cycle"):
        time_tree(tree, ideal())


# -- overlap of host issue and device execution ---------------------------------------------------


def overlapped(*, host_s: float, device_s: float, stages: dict[str, float] | None = None) -> Rates:
    profile = DeviceProfile(
        source="test: overlap",
        category_efficiency=dict.fromkeys(CATEGORIES, 1.0),
        memory_efficiency=1.0,
        kernel_overhead_s=host_s,
        stage_kernel_overhead_s=stages or {},
        overlap=True,
        device_kernel_s=device_s,
    )
    return Rates.for_device("h100-sxm", dtype="bf16", profile=profile)


def test_overlapped_time_is_the_slower_side() -> None:
    assert overlapped_time_s(D_roof=1e-3, K=10, t_d=2e-6, t_k=20e-6) == pytest.approx(1.02e-3)  # device: 1 ms + 20 us
    assert overlapped_time_s(D_roof=1e-5, K=100, t_d=2e-6, t_k=20e-6) == pytest.approx(2e-3)  # host: 100 x 20 us


def _two_stage_tree() -> CostTree:
    """A compute-heavy vision stage (device-bound) and a launch-heavy decode stage (host-bound)."""
    conv = Cost(matmul_flops=10**13, matmul_flops_executed=10**13, kernels=10)  # 10.107 ms at the bf16 peak
    small = Cost(bytes_read=335 * 10**6, kernels=1000)  # 0.1 ms of bytes, 1000 launches
    return CostTree.from_links(
        {"root": ("vision", "decode"), "vision": ("vision/sam",), "decode": ("decode/layers",)},
        {
            "root": {"conv2d": conv, "elementwise": small},
            "vision": {"conv2d": conv},
            "vision/sam": {"conv2d": conv},
            "decode": {"elementwise": small},
            "decode/layers": {"elementwise": small},
        },
    )


def test_overlap_takes_the_max_per_stage_and_sums_the_stages() -> None:
    timed = time_tree(_two_stage_tree(), overlapped(host_s=20e-6, device_s=2e-6, stages={"vision": 30e-6}))
    vision = max(1e13 / H100_BF16 + 10 * 2e-6, 10 * 30e-6)  # device-bound: 10.127 ms against 0.3 ms of host
    decode = max(335e6 / H100_BW + 1000 * 2e-6, 1000 * 20e-6)  # host-bound: 20 ms against 2.1 ms of device
    assert vision == pytest.approx(1e13 / H100_BF16 + 2e-5)
    assert decode == pytest.approx(0.02)
    assert timed.stage_s["vision"] == pytest.approx(vision)
    assert timed.stage_s["decode"] == pytest.approx(decode)
    assert timed.nodes["vision"].total_s == pytest.approx(vision)
    assert timed.total_s == pytest.approx(vision + decode)  # the root sums its stages, it does not take one max
    assert timed.nodes["root"].total_s == pytest.approx(vision + decode)
    for node in timed.nodes.values():  # total = compute-bound + memory-bound + overhead, categories share the total
        assert node.compute_bound_s + node.memory_bound_s + node.overhead_s == pytest.approx(node.total_s)
        assert sum(node.by_category_s.values()) == pytest.approx(node.total_s)
    assert timed.nodes["decode"].overhead_s == pytest.approx(0.02 - 335e6 / H100_BW)  # exposed host time


def test_without_overlap_a_stage_overhead_is_added_per_stage() -> None:
    profile = DeviceProfile(
        source="test",
        category_efficiency=dict.fromkeys(CATEGORIES, 1.0),
        memory_efficiency=1.0,
        kernel_overhead_s=20e-6,
        stage_kernel_overhead_s={"vision": 30e-6},
        device_kernel_s=2e-6,  # ignored without overlap
    )
    timed = time_tree(_two_stage_tree(), Rates.for_device("h100-sxm", dtype="bf16", profile=profile))
    assert timed.stage_s["vision"] == pytest.approx(1e13 / H100_BF16 + 10 * 30e-6)
    assert timed.stage_s["decode"] == pytest.approx(335e6 / H100_BW + 1000 * 20e-6)
