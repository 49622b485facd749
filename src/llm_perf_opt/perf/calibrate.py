"""Calibration: fit efficiencies and the per-kernel overheads of a :class:`DeviceProfile` to measured times.

The time model (:mod:`llm_perf_opt.perf.roofline`) predicts a stage ``s`` from its kernel groups ``j`` (one operator
category of one node's own ops)::

    R_s = sum_j max(A_j / eta_c(j), M_j / eta_m)            (roofline sum)
    t_s = R_s + K_s * t_k(s)                                (additive: a CPU, or the default profile)
    t_s = max(R_s + K_s * t_d, K_s * t_k(s))                (overlap: a GPU, host issue against device time)

with ``A_j`` the group's compute seconds at 100% efficiency, ``M_j`` its memory seconds at 100% efficiency (both
from :func:`~llm_perf_opt.perf.roofline.group_time`, so the fit uses exactly the model it calibrates), ``K_s`` the
kernels launched, ``t_k(s)`` the host's time per kernel (one per stage with ``per_stage``, else one for all) and
``t_d`` the device's own time per kernel.  A measurement that also recorded the device's busy time (the sum of its
kernels' durations, from the profiler) adds *device* observations ``R + K * t_d`` for the prefill forward and one
decode step: these pin the device side even when the host sets the pace.

Given which side of each ``max`` binds, every prediction is *linear* in ``u_g = 1/eta_g`` (one per efficiency group),
``v = 1/eta_m``, the ``t_k`` and ``t_d``.  The fit therefore alternates two steps until the binding sides stop changing
(at most :data:`MAX_ROUNDS` rounds; the round with the lowest objective is kept):

1. fix the binding side of every group (and, with overlap, of every stage) at the current parameters;
2. solve the bounded linear least-squares problem on *relative* residuals ``(predicted - measured) / measured`` of
   every observation, each stage weighted by its share of its measurement's total time (so a 0.3 ms projector stage
   cannot pull as hard as a 100 ms vision stage, and every measurement weighs the same) and each device observation
   by :data:`DEVICE_WEIGHT`, plus a weak ridge ``lambda * sum((x - x0) / x0)^2`` towards the prior ``x0``, with
   ``eta`` in ``[ETA_MIN, 1]`` and the per-kernel times in ``[0, T_K_MAX]``.

The ridge keeps parameters the data cannot see (a category that never binds, or that never runs) at their prior
values instead of letting them drift.  Efficiencies are grouped (:data:`DEFAULT_GROUPS`: one for matmul-like
categories, one for vector categories) unless ``groups`` says otherwise; a few stage times cannot pin down ten
category efficiencies.  Left out: per-observation noise models, uncertainty of the fitted values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.perf.efficiency import CATEGORIES, KERNEL_OVERHEAD_S, DeviceProfile
from llm_perf_opt.perf.roofline import Rates, group_time
from llm_perf_opt.perf.tree import CostTree, exclusive_by_category, stage_of

__all__ = [
    "DEFAULT_GROUPS",
    "DEVICE_WEIGHT",
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
DEVICE_WEIGHT = 0.25
"""Weight of each device-busy observation (a stage weighs its share of its measurement, all stages together 1)."""

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
    kernels: float

    def scaled(self, factor: float) -> StageGroups:
        """The same groups with every term times ``factor`` (e.g. one decode step of ``N - 1``)."""
        return StageGroups(
            categories=self.categories,
            compute_s=tuple(a * factor for a in self.compute_s),
            memory_s=tuple(m * factor for m in self.memory_s),
            kernels=self.kernels * factor,
        )

    def plus(self, other: StageGroups) -> StageGroups:
        """Both sets of groups (run one after the other)."""
        return StageGroups(
            categories=self.categories + other.categories,
            compute_s=self.compute_s + other.compute_s,
            memory_s=self.memory_s + other.memory_s,
            kernels=self.kernels + other.kernels,
        )


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
    acc: dict[str, tuple[list[str], list[float], list[float], list[float]]] = {}
    for nid, costs in exclusive_by_category(tree).items():
        cats, comp, mem, kern = acc.setdefault(stage_of(nid), ([], [], [], []))
        for category, cost in costs.items():
            terms = group_time(cost, category, unit_rates)
            cats.append(category)
            comp.append(terms.compute_s)
            mem.append(terms.memory_s)
            kern.append(float(cost.kernels))
    return {
        stage: StageGroups(categories=tuple(c), compute_s=tuple(a), memory_s=tuple(m), kernels=sum(k))
        for stage, (c, a, m, k) in acc.items()
    }


def predict_stage_seconds(groups: StageGroups, profile: DeviceProfile, *, stage: str = "other") -> float:
    """One stage under ``profile`` (equals ``time_tree``'s stage seconds): the roofline sum plus the kernels' overhead,
    or with the profile's ``overlap`` the larger of device and host time."""
    roof = _roofline_sum(groups, profile)
    host = groups.kernels * profile.kernel_overhead(stage)
    if profile.overlap:
        return max(roof + groups.kernels * profile.device_kernel_s, host)
    return roof + host


def predict_device_seconds(groups: StageGroups, profile: DeviceProfile) -> float:
    """The device side of ``groups``: roofline sum plus ``K * t_d`` (what a profiler's kernel durations add up to)."""
    return _roofline_sum(groups, profile) + groups.kernels * profile.device_kernel_s


def _roofline_sum(groups: StageGroups, profile: DeviceProfile) -> float:
    """``sum_j max(A_j / eta_c(j), M_j / eta_m)`` over the groups."""
    return sum(
        max(a / profile.efficiency(cat), m / profile.memory_efficiency)
        for cat, a, m in zip(groups.categories, groups.compute_s, groups.memory_s, strict=True)
    )


DEVICE_PARTS: Mapping[str, tuple[str, ...]] = {
    "prefill forward": ("vision", "projector", "prefill"),
    "decode step": ("decode",),
}
"""Device-busy observations: which stages each covers (a decode step is the decode stage over its step count)."""


@frozen(kw_only=True)
class CalibrationCase:
    """One measurement as the fit sees it: its cost tree timed on its device, and the measured seconds."""

    label: str = field(metadata={"help": "measurement run id"})
    tree: CostTree = field(metadata={"help": "cost tree of the measured model and workload"})
    rates: Rates = field(metadata={"help": "the device/dtype the measurement ran on (its profile is ignored)"})
    measured_s: Mapping[str, float] = field(metadata={"help": "stage -> measured seconds (decode = all steps)"})
    device_busy_s: Mapping[str, float] = field(
        factory=dict, metadata={"help": "'prefill forward' / 'decode step' -> measured device busy seconds"}
    )
    decode_steps: int = field(default=0, metadata={"help": "decode steps in the tree's decode stage (N - 1)"})


@frozen(kw_only=True)
class Residual:
    label: str
    stage: str = field(metadata={"help": "a stage, or 'device: <part>' for a device-busy observation"})
    predicted_s: float
    measured_s: float

    @property
    def error(self) -> float:
        """``predicted / measured - 1``."""
        return self.predicted_s / self.measured_s - 1.0


@frozen(kw_only=True)
class CalibrationResult:
    profile: DeviceProfile = field(metadata={"help": "the fitted profile"})
    residuals: tuple[Residual, ...] = field(metadata={"help": "per observation, under the fitted profile"})
    rounds: int = field(metadata={"help": "binding-side rounds used"})
    groups: Mapping[str, str] = field(metadata={"help": "category -> efficiency group"})


# -- the fit ---------------------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class _Obs:
    label: str
    stage: str  # the stage (host column), or "device: <part>"
    groups: StageGroups
    measured: float
    weight: float
    device_only: bool


@frozen(kw_only=True)
class _Layout:
    """Where each unknown sits in ``x``: efficiency groups, memory, host per-kernel column(s), device per kernel."""

    names: tuple[str, ...]
    host_stages: tuple[str, ...]  # one column each; () -> a single shared column
    overlap: bool

    @property
    def n(self) -> int:
        return len(self.names)

    def host_col(self, stage: str) -> int:
        if not self.host_stages:
            return self.n + 1
        return self.n + 1 + self.host_stages.index(stage)

    @property
    def device_col(self) -> int:
        return self.n + 1 + max(len(self.host_stages), 1)

    @property
    def size(self) -> int:
        return self.device_col + 1


def fit_device_profile(
    cases: Sequence[CalibrationCase],
    *,
    prior: DeviceProfile,
    device_id: str,
    source: str,
    groups: Mapping[str, str] = DEFAULT_GROUPS,
    ridge: float = RIDGE,
    overlap: bool | None = None,
    per_stage: bool = True,
) -> CalibrationResult:
    """Fit ``prior``'s efficiencies (by group) and per-kernel overheads to the measurements of ``cases``.

    ``overlap`` picks the time form (None: the prior's); ``per_stage`` fits one host time per kernel for each stage
    (the fitted profile's ``kernel_overhead_s`` is then their kernel-weighted mean, for stages not observed).
    """
    use_overlap = prior.overlap if overlap is None else overlap
    obs = _observations(cases, overlap=use_overlap)
    observed = [st for st in FITTED_STAGES if any(o.stage == st for o in obs)]
    layout = _Layout(
        names=tuple(sorted(set(groups.values()))), host_stages=tuple(observed) if per_stage else (), overlap=use_overlap
    )
    col = {c: layout.names.index(groups[c]) for c in CATEGORIES}
    t_d0 = prior.device_kernel_s or KERNEL_OVERHEAD_S["cuda-graph"]
    x0 = [1.0 / _group_prior(prior, groups, g) for g in layout.names] + [1.0 / prior.memory_efficiency]
    x0 += [max(prior.kernel_overhead(st), 1e-6) for st in layout.host_stages] or [max(prior.kernel_overhead_s, 1e-6)]
    x0.append(t_d0)
    lo = [1.0] * (layout.n + 1) + [0.0] * (layout.size - layout.n - 1)
    hi = [1.0 / ETA_MIN] * (layout.n + 1) + [T_K_MAX] * (layout.size - layout.n - 1)
    x, best = list(x0), (float("inf"), list(x0), 0)
    for rounds in range(1, MAX_ROUNDS + 1):
        rows, rhs = _linear_system(obs, x, x0, col, layout, ridge)
        z = _box_least_squares(
            rows, rhs, [a / s for a, s in zip(lo, x0, strict=True)], [b / s for b, s in zip(hi, x0, strict=True)]
        )
        new = [zi * s for zi, s in zip(z, x0, strict=True)]
        score = _objective(obs, new, x0, col, layout, ridge)
        if score < best[0]:
            best = (score, new, rounds)
        if _binding(obs, new, col, layout) == _binding(obs, x, col, layout):
            break
        x = new
    profile = _to_profile(best[1], groups, layout, obs, device_id=device_id, source=source, prior=prior)
    residuals = tuple(
        Residual(
            label=o.label,
            stage=o.stage,
            predicted_s=predict_device_seconds(o.groups, profile)
            if o.device_only
            else predict_stage_seconds(o.groups, profile, stage=o.stage),
            measured_s=o.measured,
        )
        for o in obs
    )
    return CalibrationResult(profile=profile, residuals=residuals, rounds=best[2], groups=dict(groups))


def _observations(cases: Sequence[CalibrationCase], *, overlap: bool) -> list[_Obs]:
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
            obs.append(
                _Obs(
                    label=case.label,
                    stage=stage,
                    groups=per_stage[stage],
                    measured=measured,
                    weight=measured / total,
                    device_only=False,
                )
            )
        if not overlap:
            continue  # without overlap the device side is not a separate term of the model
        for part, busy in sorted(case.device_busy_s.items()):
            stages = [st for st in DEVICE_PARTS.get(part, ()) if st in per_stage]
            if not stages or not busy > 0 or (part == "decode step" and case.decode_steps <= 0):
                continue
            combined = per_stage[stages[0]]
            for st in stages[1:]:
                combined = combined.plus(per_stage[st])
            if part == "decode step":
                combined = combined.scaled(1.0 / case.decode_steps)
            obs.append(
                _Obs(
                    label=case.label,
                    stage=f"device: {part}",
                    groups=combined,
                    measured=busy,
                    weight=DEVICE_WEIGHT,
                    device_only=True,
                )
            )
    if not obs:
        raise UserError("calibration found no stage with both a measured time and predicted work")
    return obs


def _group_prior(prior: DeviceProfile, groups: Mapping[str, str], group: str) -> float:
    members = [prior.efficiency(c) for c in CATEGORIES if groups[c] == group]
    return sum(members) / len(members)


def _sides(o: _Obs, x: Sequence[float], col: Mapping[str, int], layout: _Layout) -> tuple[list[float], list[float]]:
    """Coefficients of the device side and of the host side of ``o`` at ``x`` (group maxes resolved at ``x``)."""
    n = layout.n
    device = [0.0] * layout.size
    for c, a, m in zip(o.groups.categories, o.groups.compute_s, o.groups.memory_s, strict=True):
        if a * x[col[c]] >= m * x[n]:
            device[col[c]] += a
        else:
            device[n] += m
    host = [0.0] * layout.size
    if o.device_only or layout.overlap:
        device[layout.device_col] = o.groups.kernels
    if not o.device_only:
        host[layout.host_col(o.stage)] = o.groups.kernels
    return device, host


def _host_binds(device: Sequence[float], host: Sequence[float], x: Sequence[float]) -> bool:
    return sum(h * xi for h, xi in zip(host, x, strict=True)) > sum(d * xi for d, xi in zip(device, x, strict=True))


def _coefficients(o: _Obs, x: Sequence[float], col: Mapping[str, int], layout: _Layout) -> list[float]:
    """``t = sum_j coef_j * x_j`` for the binding sides at ``x``."""
    device, host = _sides(o, x, col, layout)
    if o.device_only:
        return device
    if not layout.overlap:
        return [d + h for d, h in zip(device, host, strict=True)]
    return host if _host_binds(device, host, x) else device


def _binding(obs: Sequence[_Obs], x: Sequence[float], col: Mapping[str, int], layout: _Layout) -> list[bool]:
    """For every group of every observation: does the compute side win (ties: compute, as ``GroupTime``)? And with
    overlap, for every stage observation: does the host side win?"""
    out: list[bool] = []
    n = layout.n
    for o in obs:
        out.extend(
            a * x[col[c]] >= m * x[n]
            for c, a, m in zip(o.groups.categories, o.groups.compute_s, o.groups.memory_s, strict=True)
        )
        if layout.overlap and not o.device_only:
            out.append(_host_binds(*_sides(o, x, col, layout), x))
    return out


def _linear_system(
    obs: Sequence[_Obs], x: Sequence[float], x0: Sequence[float], col: Mapping[str, int], layout: _Layout, ridge: float
) -> tuple[list[list[float]], list[float]]:
    """Rows in scaled unknowns ``z = x / x0``: weighted relative residuals, then ridge rows ``sqrt(ridge) (z - 1)``."""
    rows: list[list[float]] = []
    rhs: list[float] = []
    for o in obs:
        coef = _coefficients(o, x, col, layout)
        root = o.weight**0.5
        rows.append([root * cj * sj / o.measured for cj, sj in zip(coef, x0, strict=True)])
        rhs.append(root)
    w = ridge**0.5
    for j in range(len(x0)):
        rows.append([w if k == j else 0.0 for k in range(len(x0))])
        rhs.append(w)
    return rows, rhs


def _objective(
    obs: Sequence[_Obs], x: Sequence[float], x0: Sequence[float], col: Mapping[str, int], layout: _Layout, ridge: float
) -> float:
    """The exact (non-linearised) objective at ``x``."""
    total = 0.0
    for o in obs:
        pred = sum(cj * xj for cj, xj in zip(_coefficients(o, x, col, layout), x, strict=True))
        total += o.weight * (pred / o.measured - 1.0) ** 2
    return total + ridge * sum((xj / sj - 1.0) ** 2 for xj, sj in zip(x, x0, strict=True))


def _to_profile(
    x: Sequence[float],
    groups: Mapping[str, str],
    layout: _Layout,
    obs: Sequence[_Obs],
    *,
    device_id: str,
    source: str,
    prior: DeviceProfile,
) -> DeviceProfile:
    n = layout.n
    per_stage = {st: max(0.0, x[layout.host_col(st)]) for st in layout.host_stages}
    if per_stage:
        kernels = {st: sum(o.groups.kernels for o in obs if o.stage == st) for st in per_stage}
        weight = sum(kernels.values())
        shared = (
            sum(per_stage[st] * kernels[st] for st in per_stage) / weight if weight > 0 else prior.kernel_overhead_s
        )
    else:
        shared = max(0.0, x[layout.host_col("other")])
    return DeviceProfile(
        device_id=device_id,
        source=source,
        category_efficiency={c: min(1.0, 1.0 / x[layout.names.index(groups[c])]) for c in CATEGORIES},
        memory_efficiency=min(1.0, 1.0 / x[n]),
        kernel_overhead_s=shared,
        stage_kernel_overhead_s=per_stage,
        overlap=layout.overlap,
        device_kernel_s=max(0.0, x[layout.device_col]) if layout.overlap else prior.device_kernel_s,
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
