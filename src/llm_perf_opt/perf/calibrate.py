"""Calibration: fit efficiencies and the per-kernel overhead of a :class:`DeviceProfile` to measured stage times.

The time model (:mod:`llm_perf_opt.perf.roofline`) predicts a stage as a sum over kernel groups ``j`` (one operator
category of one node's own ops)::

    t_stage = sum_j max(A_j / eta_c(j), M_j / eta_m) + K_stage * t_k

with ``A_j`` the group's compute seconds at 100% efficiency, ``M_j`` its memory seconds at 100% efficiency (both
from :func:`~llm_perf_opt.perf.roofline.group_time`, so the fit uses exactly the model it calibrates) and ``K`` the
kernels launched.  Given which side of each ``max`` binds, ``t_stage`` is *linear* in ``u_g = 1/eta_g`` (one per
efficiency group), ``v = 1/eta_m`` and ``t_k``.  The fit therefore alternates two steps until the binding sides stop
changing (at most :data:`MAX_ROUNDS` rounds; the round with the lowest objective is kept):

1. fix the binding side of every group at the current parameters;
2. solve the bounded linear least-squares problem on *relative* residuals ``(predicted - measured) / measured`` of
   every observed stage, each weighted by the stage's share of its measurement's total time (so a 0.3 ms projector
   stage cannot pull as hard as a 100 ms vision stage, and every measurement weighs the same), plus a weak ridge
   ``lambda * sum((x - x0) / x0)^2`` towards the prior profile ``x0``, with ``eta`` in ``[ETA_MIN, 1]`` and ``t_k``
   in ``[0, T_K_MAX]``.

The ridge keeps parameters the data cannot see (a category that never binds, or that never runs) at their prior
values instead of letting them drift.  Efficiencies are grouped (:data:`DEFAULT_GROUPS`: one for matmul-like
categories, one for vector categories) unless ``groups`` says otherwise; a few stage times cannot pin down ten
category efficiencies.  Left out: per-observation noise models, uncertainty of the fitted values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.perf.efficiency import CATEGORIES, DeviceProfile
from llm_perf_opt.perf.roofline import Rates, group_time
from llm_perf_opt.perf.tree import CostTree, exclusive_by_category, stage_of

__all__ = [
    "DEFAULT_GROUPS",
    "ETA_MIN",
    "FITTED_STAGES",
    "MAX_ROUNDS",
    "PER_CATEGORY_GROUPS",
    "T_K_MAX",
    "CalibrationCase",
    "CalibrationResult",
    "Residual",
    "StageGroups",
    "fit_device_profile",
    "predict_stage_seconds",
    "stage_groups",
]

FITTED_STAGES = ("vision", "projector", "prefill", "decode")
ETA_MIN = 1e-3
T_K_MAX = 1e-2
MAX_ROUNDS = 50
RIDGE = 1e-6

DEFAULT_GROUPS: Mapping[str, str] = {
    "linear": "matmul",
    "conv2d": "matmul",
    "attention": "matmul",
    "moe_routing": "matmul",
    "norm": "vector",
    "activation": "vector",
    "embedding": "vector",
    "elementwise": "vector",
    "data_movement": "vector",
    "other": "vector",
}
"""Efficiency groups: categories in one group share one fitted efficiency."""

PER_CATEGORY_GROUPS: Mapping[str, str] = {c: c for c in CATEGORIES}
"""Every category its own efficiency (needs many, varied observations)."""


@frozen(kw_only=True)
class StageGroups:
    """One stage's kernel groups at 100% efficiency: category, compute seconds, memory seconds; and its kernels."""

    categories: tuple[str, ...]
    compute_s: tuple[float, ...]
    memory_s: tuple[float, ...]
    kernels: int


def stage_groups(tree: CostTree, rates: Rates) -> dict[str, StageGroups]:
    """Split ``tree`` into per-stage kernel groups with their roofline terms at efficiency 1 and zero overhead."""
    unit = DeviceProfile(
        device_id="*",
        source="unit",
        category_efficiency=dict.fromkeys(CATEGORIES, 1.0),
        memory_efficiency=1.0,
        kernel_overhead_s=0.0,
    )
    unit_rates = Rates(
        device_id=rates.device_id,
        dtype=rates.dtype,
        matmul_peak_flops=rates.matmul_peak_flops,
        vector_peak_flops=rates.vector_peak_flops,
        memory_bandwidth_bytes_per_s=rates.memory_bandwidth_bytes_per_s,
        profile=unit,
        bytes_scale=rates.bytes_scale,
    )
    acc: dict[str, tuple[list[str], list[float], list[float], list[int]]] = {}
    for nid, costs in exclusive_by_category(tree).items():
        cats, comp, mem, kern = acc.setdefault(stage_of(nid), ([], [], [], []))
        for category, cost in costs.items():
            terms = group_time(cost, category, unit_rates)
            cats.append(category)
            comp.append(terms.compute_s)
            mem.append(terms.memory_s)
            kern.append(cost.kernels)
    return {
        stage: StageGroups(categories=tuple(c), compute_s=tuple(a), memory_s=tuple(m), kernels=sum(k))
        for stage, (c, a, m, k) in acc.items()
    }


def predict_stage_seconds(groups: StageGroups, profile: DeviceProfile) -> float:
    """The roofline sum of one stage under ``profile`` (equals ``time_tree``'s stage seconds)."""
    total = groups.kernels * profile.kernel_overhead_s
    for cat, a, m in zip(groups.categories, groups.compute_s, groups.memory_s, strict=True):
        total += max(a / profile.efficiency(cat), m / profile.memory_efficiency)
    return total


@frozen(kw_only=True)
class CalibrationCase:
    """One measurement as the fit sees it: its cost tree timed on its device, and the measured stage seconds."""

    label: str = field(metadata={"help": "measurement run id"})
    tree: CostTree = field(metadata={"help": "cost tree of the measured model and workload"})
    rates: Rates = field(metadata={"help": "the device/dtype the measurement ran on (its profile is ignored)"})
    measured_s: Mapping[str, float] = field(metadata={"help": "stage -> measured seconds (decode = all steps)"})


@frozen(kw_only=True)
class Residual:
    label: str
    stage: str
    predicted_s: float
    measured_s: float

    @property
    def error(self) -> float:
        """``predicted / measured - 1``."""
        return self.predicted_s / self.measured_s - 1.0


@frozen(kw_only=True)
class CalibrationResult:
    profile: DeviceProfile = field(metadata={"help": "the fitted profile"})
    residuals: tuple[Residual, ...] = field(metadata={"help": "per observed stage, under the fitted profile"})
    rounds: int = field(metadata={"help": "binding-side rounds used"})
    groups: Mapping[str, str] = field(metadata={"help": "category -> efficiency group"})


# -- the fit ---------------------------------------------------------------------------------------------------------


def fit_device_profile(
    cases: Sequence[CalibrationCase],
    *,
    prior: DeviceProfile,
    device_id: str,
    source: str,
    groups: Mapping[str, str] = DEFAULT_GROUPS,
    ridge: float = RIDGE,
) -> CalibrationResult:
    """Fit ``prior``'s efficiencies (by group) and per-kernel overhead to the measured stages of ``cases``."""
    obs = _observations(cases)
    names = sorted(set(groups.values()))
    x0 = [1.0 / _group_prior(prior, groups, g) for g in names] + [1.0 / prior.memory_efficiency]
    x0.append(prior.kernel_overhead_s if prior.kernel_overhead_s > 0 else 1e-6)
    lo = [1.0] * (len(names) + 1) + [0.0]
    hi = [1.0 / ETA_MIN] * (len(names) + 1) + [T_K_MAX]
    col = {c: names.index(groups[c]) for c in CATEGORIES}
    x, best = list(x0), (float("inf"), list(x0), 0)
    for rounds in range(1, MAX_ROUNDS + 1):
        rows, rhs = _linear_system(obs, x, x0, col, len(names), ridge)
        z = _box_least_squares(
            rows, rhs, [a / s for a, s in zip(lo, x0, strict=True)], [b / s for b, s in zip(hi, x0, strict=True)]
        )
        new = [zi * s for zi, s in zip(z, x0, strict=True)]
        score = _objective(obs, new, x0, col, len(names), ridge)
        if score < best[0]:
            best = (score, new, rounds)
        if _binding(obs, new, col, len(names)) == _binding(obs, x, col, len(names)):
            break
        x = new
    profile = _to_profile(best[1], names, groups, device_id=device_id, source=source)
    residuals = tuple(
        Residual(label=label, stage=stage, predicted_s=predict_stage_seconds(g, profile), measured_s=m)
        for label, stage, g, m, _ in obs
    )
    return CalibrationResult(profile=profile, residuals=residuals, rounds=best[2], groups=dict(groups))


_Obs = tuple[str, str, StageGroups, float, float]  # label, stage, groups, measured seconds, weight


def _observations(cases: Sequence[CalibrationCase]) -> list[_Obs]:
    if not cases:
        raise UserError("calibration needs at least one measurement")
    obs: list[_Obs] = []
    for case in cases:
        per_stage = stage_groups(case.tree, case.rates)
        usable = {
            stage: seconds
            for stage in FITTED_STAGES
            if (seconds := case.measured_s.get(stage)) is not None and seconds > 0 and stage in per_stage
        }
        total = sum(usable.values())
        for stage, measured in usable.items():
            obs.append((case.label, stage, per_stage[stage], measured, measured / total))
    if not obs:
        raise UserError("calibration found no stage with both a measured time and predicted work")
    return obs


def _group_prior(prior: DeviceProfile, groups: Mapping[str, str], group: str) -> float:
    members = [prior.efficiency(c) for c in CATEGORIES if groups[c] == group]
    return sum(members) / len(members)


def _binding(obs: Sequence[_Obs], x: Sequence[float], col: Mapping[str, int], n: int) -> list[bool]:
    """For every group of every observation: does the compute side win the max (ties: compute, as ``GroupTime``)?"""
    return [
        a * x[col[c]] >= m * x[n]
        for _, _, g, _, _ in obs
        for c, a, m in zip(g.categories, g.compute_s, g.memory_s, strict=True)
    ]


def _coefficients(g: StageGroups, x: Sequence[float], col: Mapping[str, int], n: int) -> list[float]:
    """``t = sum_j coef_j * x_j`` for the binding sides at ``x``: x = (u_groups..., v, t_k)."""
    coef = [0.0] * (n + 2)
    for c, a, m in zip(g.categories, g.compute_s, g.memory_s, strict=True):
        if a * x[col[c]] >= m * x[n]:
            coef[col[c]] += a
        else:
            coef[n] += m
    coef[n + 1] = float(g.kernels)
    return coef


def _linear_system(
    obs: Sequence[_Obs], x: Sequence[float], x0: Sequence[float], col: Mapping[str, int], n: int, ridge: float
) -> tuple[list[list[float]], list[float]]:
    """Rows in scaled unknowns ``z = x / x0``: weighted relative residuals, then ridge rows ``sqrt(ridge) (z - 1)``."""
    rows: list[list[float]] = []
    rhs: list[float] = []
    for _, _, g, measured, weight in obs:
        coef = _coefficients(g, x, col, n)
        root = weight**0.5
        rows.append([root * cj * sj / measured for cj, sj in zip(coef, x0, strict=True)])
        rhs.append(root)
    w = ridge**0.5
    for j in range(len(x0)):
        rows.append([w if k == j else 0.0 for k in range(len(x0))])
        rhs.append(w)
    return rows, rhs


def _objective(
    obs: Sequence[_Obs], x: Sequence[float], x0: Sequence[float], col: Mapping[str, int], n: int, ridge: float
) -> float:
    """The exact (non-linearised) objective at ``x``."""
    total = 0.0
    for _, _, g, measured, weight in obs:
        pred = sum(cj * xj for cj, xj in zip(_coefficients(g, x, col, n), x, strict=True))
        total += weight * (pred / measured - 1.0) ** 2
    return total + ridge * sum((xj / sj - 1.0) ** 2 for xj, sj in zip(x, x0, strict=True))


def _to_profile(
    x: Sequence[float], names: Sequence[str], groups: Mapping[str, str], *, device_id: str, source: str
) -> DeviceProfile:
    n = len(names)
    return DeviceProfile(
        device_id=device_id,
        source=source,
        category_efficiency={c: min(1.0, 1.0 / x[names.index(groups[c])]) for c in CATEGORIES},
        memory_efficiency=min(1.0, 1.0 / x[n]),
        kernel_overhead_s=max(0.0, x[n + 1]),
    )


# -- bounded linear least squares (small dense problems) ------------------------------------------------------------


def _box_least_squares(
    rows: Sequence[Sequence[float]], rhs: Sequence[float], lo: Sequence[float], hi: Sequence[float]
) -> list[float]:
    """``min ||R z - b||^2`` subject to ``lo <= z <= hi`` by an active-set method on the normal equations.

    Free variables are solved exactly; the worst bound violation is clamped, and a clamped variable whose gradient
    points inside is released, until neither happens (at most ``4 n`` + 20 passes).
    """
    n = len(lo)
    H = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    g0 = [sum(r[i] * b for r, b in zip(rows, rhs, strict=True)) for i in range(n)]
    fixed: dict[int, float] = {}
    z = [min(max(1.0, lo[i]), hi[i]) for i in range(n)]
    for _ in range(4 * n + 20):
        free = [i for i in range(n) if i not in fixed]
        sol = _solve(
            [[H[i][j] for j in free] for i in free], [g0[i] - sum(H[i][k] * v for k, v in fixed.items()) for i in free]
        )
        z = [fixed.get(i, 0.0) for i in range(n)]
        for i, value in zip(free, sol, strict=True):
            z[i] = value
        worst = max(free, key=lambda i: max(lo[i] - z[i], z[i] - hi[i]), default=None)
        if worst is not None and (z[worst] < lo[worst] or z[worst] > hi[worst]):
            fixed[worst] = lo[worst] if z[worst] < lo[worst] else hi[worst]
            continue
        grad = {i: sum(H[i][j] * z[j] for j in range(n)) - g0[i] for i in fixed}
        inward = {i: (-grad[i] if fixed[i] == lo[i] else grad[i]) for i in fixed}
        release = max(inward, key=lambda i: inward[i], default=None)
        if release is None or inward[release] <= 1e-12:
            break
        del fixed[release]
    return [min(max(v, lo[i]), hi[i]) for i, v in enumerate(z)]


def _solve(A: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (``A`` square, small); a singular pivot gives 0 for that unknown."""
    n = len(b)
    M = [[*row, bi] for row, bi in zip(A, b, strict=True)]
    for k in range(n):
        p = max(range(k, n), key=lambda i: abs(M[i][k]))
        M[k], M[p] = M[p], M[k]
        if abs(M[k][k]) < 1e-300:
            continue
        for i in range(k + 1, n):
            f = M[i][k] / M[k][k]
            for j in range(k, n + 1):
                M[i][j] -= f * M[k][j]
    out = [0.0] * n
    for k in range(n - 1, -1, -1):
        if abs(M[k][k]) < 1e-300:
            continue
        out[k] = (M[k][n] - sum(M[k][j] * out[j] for j in range(k + 1, n))) / M[k][k]
    return out
