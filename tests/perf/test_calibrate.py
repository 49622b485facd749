"""Calibration: recovers known efficiencies and overhead from stage times the time model itself generated."""

from __future__ import annotations

import pytest

from llm_perf_opt.core import Cost
from llm_perf_opt.core.tree import CostTree
from llm_perf_opt.errors import UserError
from llm_perf_opt.hardware import get_device
from llm_perf_opt.perf.calibrate import (
    DEFAULT_GROUPS,
    PER_CATEGORY_GROUPS,
    CalibrationCase,
    fit_device_profile,
    predict_device_seconds,
    predict_stage_seconds,
    stage_groups,
)
from llm_perf_opt.perf.efficiency import CATEGORIES, DeviceProfile, default_profile
from llm_perf_opt.perf.roofline import Rates, time_tree

RATES = Rates.for_device(get_device("h100-sxm"), dtype="bf16")
G = 10**9


def _mm(flops: int, nbytes: int, kernels: int) -> Cost:
    return Cost(matmul_flops=flops, matmul_flops_executed=flops, bytes_read=nbytes, kernels=kernels)


def _vec(flops: int, nbytes: int, kernels: int) -> Cost:
    return Cost(vector_flops=flops, bytes_read=nbytes, kernels=kernels)


def _tree(scale: int, tokens: int) -> CostTree:
    """A small synthetic model: compute-bound vision, a vector-heavy norm, memory- and launch-bound decode.

    Conv work grows with ``scale``, attention with ``scale**2`` and the norm with ``tokens``, so three cases tell
    the three vision categories apart."""
    leaves: dict[str, dict[str, Cost]] = {
        "vision/conv": {"conv2d": _mm(900 * G * scale, 2 * G, 40)},
        "vision/attn": {"attention": _mm(400 * G * scale**2, 1 * G, 60), "norm": _vec(30 * G * tokens, G // 10, 80)},
        "projector/proj": {"linear": _mm(3 * G * scale, G // 50, 4), "data_movement": _vec(0, G // 20, 30)},
        "prefill/layers": {"linear": _mm(200 * G * tokens, 3 * G, 600), "elementwise": _vec(G * tokens, 2 * G, 900)},
        "decode/layers": {"linear": _mm(G * tokens, 400 * G, 20000 * tokens), "elementwise": _vec(G, 20 * G, 40000)},
    }
    ids: dict[str, dict[str, Cost]] = dict(leaves)
    for stage in ("vision", "projector", "prefill", "decode"):
        ids[stage] = _sum(v for k, v in leaves.items() if k.startswith(stage + "/"))
    ids["root"] = _sum(ids[s] for s in ("vision", "projector", "prefill", "decode"))
    return CostTree.from_categories(ids)


def _sum(parts: object) -> dict[str, Cost]:
    out: dict[str, Cost] = {}
    for part in parts:  # type: ignore[attr-defined]
        for cat, cost in part.items():
            out[cat] = out.get(cat, Cost()) + cost
    return out


def _cases(truth: DeviceProfile) -> list[CalibrationCase]:
    cases = []
    for i, (scale, tokens) in enumerate([(1, 1), (3, 2), (9, 5)]):
        tree = _tree(scale, tokens)
        timed = time_tree(tree, Rates.for_device(get_device("h100-sxm"), dtype="bf16", profile=truth))
        measured = {s: timed.stage_s[s] for s in ("vision", "projector", "prefill", "decode")}
        cases.append(CalibrationCase(label=f"synthetic-{i}", tree=tree, rates=RATES, measured_s=measured))
    return cases


def test_fast_stage_sum_equals_the_time_model() -> None:
    tree = _tree(2, 3)
    profile = default_profile("eager")
    timed = time_tree(tree, Rates.for_device(get_device("h100-sxm"), dtype="bf16", profile=profile))
    for stage, groups in stage_groups(tree, RATES).items():
        assert predict_stage_seconds(groups, profile) == pytest.approx(timed.stage_s[stage], rel=1e-12)


def test_recovers_group_efficiencies_and_overhead() -> None:
    matmul, vector = 0.55, 0.2
    truth = DeviceProfile(
        source="truth",
        category_efficiency={c: matmul if DEFAULT_GROUPS[c] == "matmul" else vector for c in CATEGORIES},
        memory_efficiency=0.7,
        kernel_overhead_s=6e-6,
    )
    result = fit_device_profile(
        _cases(truth), prior=default_profile("eager"), device_id="h100-sxm", source="test", per_stage=False
    )
    fitted = result.profile
    assert fitted.efficiency("linear") == pytest.approx(matmul, rel=0.01)
    assert fitted.efficiency("conv2d") == pytest.approx(matmul, rel=0.01)
    assert fitted.efficiency("norm") == pytest.approx(vector, rel=0.01)
    assert fitted.memory_efficiency == pytest.approx(0.7, rel=0.01)
    assert fitted.kernel_overhead_s == pytest.approx(6e-6, rel=0.01)
    assert max(abs(r.error) for r in result.residuals) < 0.01
    assert fitted.device_id == "h100-sxm"


def test_recovers_per_category_efficiencies_that_the_data_sees() -> None:
    truth = DeviceProfile(
        source="truth",
        category_efficiency={"conv2d": 0.45, "attention": 0.3, "linear": 0.65, "norm": 0.5},
        memory_efficiency=0.85,
        kernel_overhead_s=4e-6,
    )
    result = fit_device_profile(
        _cases(truth),
        prior=default_profile("eager"),
        device_id="h100-sxm",
        source="test",
        groups=PER_CATEGORY_GROUPS,
        per_stage=False,
    )
    fitted = result.profile
    for category in ("conv2d", "attention", "linear"):
        assert fitted.efficiency(category) == pytest.approx(truth.efficiency(category), rel=0.02)
    assert fitted.memory_efficiency == pytest.approx(0.85, rel=0.02)
    assert fitted.kernel_overhead_s == pytest.approx(4e-6, rel=0.02)
    # categories that never run keep the prior's value (the ridge holds them)
    assert fitted.efficiency("moe_routing") == pytest.approx(
        default_profile("eager").efficiency("moe_routing"), rel=1e-3
    )


def test_efficiencies_stay_in_bounds_when_the_data_wants_more_than_peak() -> None:
    case = _cases(default_profile("eager"))[0]
    fast = CalibrationCase(
        label="too-fast", tree=case.tree, rates=RATES, measured_s={k: v / 50 for k, v in case.measured_s.items()}
    )
    fitted = fit_device_profile([fast], prior=default_profile("eager"), device_id="*", source="test").profile
    assert all(0 < fitted.efficiency(c) <= 1 for c in CATEGORIES)
    assert 0 < fitted.memory_efficiency <= 1
    assert fitted.kernel_overhead_s >= 0


def test_no_usable_observation_is_a_user_error() -> None:
    case = CalibrationCase(label="empty", tree=_tree(1, 1), rates=RATES, measured_s={})
    with pytest.raises(UserError, match="no stage"):
        fit_device_profile([case], prior=default_profile("eager"), device_id="*", source="test")
    with pytest.raises(UserError, match="at least one"):
        fit_device_profile([], prior=default_profile("eager"), device_id="*", source="test")


STAGE_HOST = {"vision": 18e-6, "projector": 30e-6, "prefill": 12e-6, "decode": 17e-6}


def _overlap_truth() -> DeviceProfile:
    return DeviceProfile(
        source="truth",
        category_efficiency={c: 0.35 if DEFAULT_GROUPS[c] == "matmul" else 0.5 for c in CATEGORIES},
        memory_efficiency=0.9,
        kernel_overhead_s=15e-6,
        stage_kernel_overhead_s=STAGE_HOST,
        overlap=True,
        device_kernel_s=2.5e-6,
    )


def _overlap_cases(truth: DeviceProfile, *, busy: bool = True, steps: int = 100) -> list[CalibrationCase]:
    """Stage times from the time model under ``truth``, plus the device busy time a profiler would report."""
    cases = []
    for i, (scale, tokens) in enumerate([(1, 1), (3, 2), (9, 5), (2, 8)]):
        tree = _tree(scale, tokens)
        timed = time_tree(tree, Rates.for_device(get_device("h100-sxm"), dtype="bf16", profile=truth))
        groups = stage_groups(tree, RATES)
        forward = groups["vision"].plus(groups["projector"]).plus(groups["prefill"])
        device = {
            "prefill forward": predict_device_seconds(forward, truth),
            "decode step": predict_device_seconds(groups["decode"].scaled(1 / steps), truth),
        }
        cases.append(
            CalibrationCase(
                label=f"synthetic-{i}",
                tree=tree,
                rates=RATES,
                measured_s={s: timed.stage_s[s] for s in ("vision", "projector", "prefill", "decode")},
                device_busy_s=device if busy else {},
                decode_steps=steps,
            )
        )
    return cases


def test_overlap_stage_sum_equals_the_time_model() -> None:
    tree = _tree(3, 2)
    truth = _overlap_truth()
    timed = time_tree(tree, Rates.for_device(get_device("h100-sxm"), dtype="bf16", profile=truth))
    for stage, groups in stage_groups(tree, RATES).items():
        assert predict_stage_seconds(groups, truth, stage=stage) == pytest.approx(timed.stage_s[stage], rel=1e-12)


def test_recovers_host_time_per_stage_and_the_device_side_with_overlap() -> None:
    truth = _overlap_truth()
    result = fit_device_profile(
        _overlap_cases(truth), prior=default_profile("eager"), device_id="h100-sxm", source="test", overlap=True
    )
    fitted = result.profile
    assert fitted.overlap
    # every stage observation fits, and so does every device observation
    assert max(abs(r.error) for r in result.residuals) < 0.01
    assert {r.stage for r in result.residuals} >= {"device: prefill forward", "device: decode step"}
    # the host-bound stages pin their host time per kernel; the device observations pin the device side
    for stage in ("prefill", "decode"):
        assert fitted.kernel_overhead(stage) == pytest.approx(STAGE_HOST[stage], rel=0.01)
    assert fitted.device_kernel_s == pytest.approx(2.5e-6, rel=0.02)
    assert fitted.efficiency("linear") == pytest.approx(0.35, rel=0.02)
    assert fitted.memory_efficiency == pytest.approx(0.9, rel=0.02)


def test_without_overlap_device_observations_are_not_used() -> None:
    truth = _overlap_truth()
    result = fit_device_profile(
        _overlap_cases(truth), prior=default_profile("eager"), device_id="h100-sxm", source="test", overlap=False
    )
    assert not result.profile.overlap
    assert not any(r.stage.startswith("device") for r in result.residuals)
    assert set(result.profile.stage_kernel_overhead_s) == {"vision", "projector", "prefill", "decode"}


def test_noise_free_data_give_tiny_standard_errors_and_a_finite_condition_number() -> None:
    truth = _overlap_truth()
    result = fit_device_profile(
        _overlap_cases(truth), prior=default_profile("eager"), device_id="h100-sxm", source="test", overlap=True
    )
    by_name = {p.name: p for p in result.parameters}
    assert 1 <= result.condition_number < 1e6
    for name in ("eta[matmul]", "eta_m", "t_d", "t_k[decode]"):
        parameter = by_name[name]
        assert parameter.status == "fitted"
        assert parameter.std_error is not None and parameter.std_error < 0.01 * parameter.value
    assert by_name["eta[matmul]"].value == pytest.approx(0.35, rel=0.02)
    assert "+/-" in by_name["eta_m"].describe()


def test_noisy_data_give_standard_errors_that_cover_the_truth() -> None:
    truth = _overlap_truth()
    noisy = [
        CalibrationCase(
            label=case.label,
            tree=case.tree,
            rates=case.rates,
            measured_s={s: v * (1 + 0.03 * ((i + j) % 3 - 1)) for j, (s, v) in enumerate(case.measured_s.items())},
            device_busy_s=case.device_busy_s,
            decode_steps=case.decode_steps,
        )
        for i, case in enumerate(_overlap_cases(truth))
    ]
    result = fit_device_profile(noisy, prior=default_profile("eager"), device_id="*", source="test", overlap=True)
    memory = next(p for p in result.parameters if p.name == "eta_m")
    assert memory.std_error is not None and memory.std_error > 0
    assert abs(memory.value - 0.9) < 4 * memory.std_error + 1e-3


def test_a_category_that_never_runs_is_reported_as_not_seen() -> None:
    truth = _overlap_truth()
    result = fit_device_profile(
        _overlap_cases(truth),
        prior=default_profile("eager"),
        device_id="*",
        source="test",
        groups=PER_CATEGORY_GROUPS,
        overlap=True,
    )
    moe = next(p for p in result.parameters if p.name == "eta[moe_routing]")
    assert (moe.status, moe.std_error) == ("not seen (prior kept)", None)


def test_a_design_that_moves_two_efficiencies_only_together_is_refused() -> None:
    """conv2d and linear always run the same work in the same stage: their efficiencies cannot be told apart."""
    truth = default_profile("eager")
    cases = []
    for i, scale in enumerate((1, 2, 5)):
        leaves = {
            "vision/a": {"conv2d": _mm(500 * G * scale, G, 10), "linear": _mm(500 * G * scale, G, 10)},
            "prefill/b": {"elementwise": _vec(G, 50 * G * scale, 100)},
        }
        ids: dict[str, dict[str, Cost]] = dict(leaves)
        ids["vision"], ids["prefill"] = leaves["vision/a"], leaves["prefill/b"]
        ids["root"] = _sum([ids["vision"], ids["prefill"]])
        tree = CostTree.from_categories(ids)
        timed = time_tree(tree, Rates.for_device(get_device("h100-sxm"), dtype="bf16", profile=truth))
        measured = {s: timed.stage_s[s] for s in ("vision", "prefill")}
        cases.append(CalibrationCase(label=f"c{i}", tree=tree, rates=RATES, measured_s=measured))
    with pytest.raises(UserError, match=r"do not tell .*eta\[conv2d\].*eta\[linear\].* apart"):
        fit_device_profile(
            cases, prior=truth, device_id="*", source="test", groups=PER_CATEGORY_GROUPS, per_stage=False
        )
    kept = fit_device_profile(
        cases,
        prior=truth,
        device_id="*",
        source="test",
        groups=PER_CATEGORY_GROUPS,
        per_stage=False,
        refuse_unidentified=False,
    )
    status = {p.name: (p.status, p.std_error) for p in kept.parameters}
    assert status["eta[conv2d]"] == status["eta[linear]"] == ("not identified (prior kept)", None)
    assert kept.condition_number > 1e8
