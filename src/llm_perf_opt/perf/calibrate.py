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

Step 2 is :func:`~llm_perf_opt.perf.bvls.bounded_least_squares` (bounded-variable least squares, an active-set
method after Stark and Parker's BVLS).  The ridge keeps parameters the data cannot see (a category that never binds,
or that never runs) at their prior values instead of letting them drift.
Efficiencies are grouped (:data:`DEFAULT_GROUPS`: one for matmul-like categories, one for vector categories) unless
``groups`` says otherwise; a few stage times cannot pin down ten category efficiencies.

Identification and uncertainty (:class:`FittedParameter`): at the fitted values, the Jacobian ``J`` of the weighted
relative residuals (data rows only, no ridge) with respect to the parameters the data see and that are not on a
bound.  Its condition number is reported; a rank-deficient ``J`` (condition number above :data:`MAX_CONDITION`: the
data move two parameters only together) is refused with one line naming them.  Standard errors are
``sqrt(diag(s^2 (J^T J)^-1))`` with ``s^2 = RSS / (m - p)`` (``m`` observations, ``p`` free parameters), mapped to
efficiencies by the delta method (``se(eta) = se(u) / u^2`` for ``u = 1/eta``); none when ``m <= p``.  Left out:
per-observation noise models, the ridge's and the bounds' effect on the uncertainty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from attrs import evolve, field, frozen

from llm_perf_opt.core.tree import CostTree, stage_of
from llm_perf_opt.errors import UserError
from llm_perf_opt.perf.bvls import bounded_least_squares
from llm_perf_opt.perf.efficiency import CATEGORIES, KERNEL_OVERHEAD_S, DeviceProfile
from llm_perf_opt.perf.roofline import Rates, group_time

__all__ = [
    "DEFAULT_GROUPS",
    "DEVICE_WEIGHT",
    "ETA_MIN",
    "FITTED_STAGES",
    "MAX_CONDITION",
    "MAX_ROUNDS",
    "PER_CATEGORY_GROUPS",
    "T_K_MAX",
    "CalibrationCase",
    "CalibrationResult",
    "FittedParameter",
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
MAX_CONDITION = 1e8
"""Largest condition number of the free parameters' Jacobian (scaled to the prior) the fit accepts."""
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
    unit_rates = evolve(rates, profile=unit)
    acc: dict[str, tuple[list[str], list[float], list[float], list[float]]] = {}
    for nid, costs in tree.exclusive_by_category().items():
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
    groups: Mapping[str, StageGroups] = field(
        init=False,
        eq=False,
        repr=False,
        metadata={"help": "stage_groups(tree, rates), computed once: every fit that uses the case reads it"},
    )

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "groups", stage_groups(self.tree, self.rates))


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
class FittedParameter:
    """One fitted parameter: its value, standard error and whether the data determined it."""

    name: str = field(metadata={"help": "eta[group], eta_m, t_k[stage] (or t_k), t_d"})
    value: float = field(metadata={"help": "efficiency (0-1] or seconds per kernel"})
    std_error: float | None = field(metadata={"help": "one standard error (None: not fitted freely, or m <= p)"})
    status: str = field(metadata={"help": "fitted | at bound | not seen (prior kept) | not identified (prior kept)"})

    def describe(self) -> str:
        seconds = self.name.startswith("t_")
        scale, unit = (1e6, " us") if seconds else (1.0, "")
        value = f"{self.value * scale:.4g}{unit}"
        if self.status != "fitted":
            return f"{self.name} = {value} ({self.status})"
        spread = "n/a (no spare observations)" if self.std_error is None else f"{self.std_error * scale:.2g}{unit}"
        return f"{self.name} = {value} +/- {spread}"


@frozen(kw_only=True)
class CalibrationResult:
    profile: DeviceProfile = field(metadata={"help": "the fitted profile"})
    residuals: tuple[Residual, ...] = field(metadata={"help": "per observation, under the fitted profile"})
    rounds: int = field(metadata={"help": "binding-side rounds used"})
    groups: Mapping[str, str] = field(metadata={"help": "category -> efficiency group"})
    parameters: tuple[FittedParameter, ...] = field(default=(), metadata={"help": "values, errors, status"})
    condition_number: float = field(default=1.0, metadata={"help": "of the free parameters' Jacobian (1 = none)"})


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
    refuse_unidentified: bool = True,
) -> CalibrationResult:
    """Fit ``prior``'s efficiencies (by group) and per-kernel overheads to the measurements of ``cases``.

    ``overlap`` picks the time form (None: the prior's); ``per_stage`` fits one host time per kernel for each stage
    (the fitted profile's ``kernel_overhead_s`` is then their kernel-weighted mean, for stages not observed).
    ``refuse_unidentified`` (default) refuses data that cannot tell fitted parameters apart; off, they are reported as
    not identified and kept near the prior by the ridge (a validation page's leave-one-out fits on few measurements).
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
        z = bounded_least_squares(
            np.asarray(rows), np.asarray(rhs), lower=np.asarray(lo) / x0, upper=np.asarray(hi) / x0
        )
        new = [float(zi) * s for zi, s in zip(z, x0, strict=True)]
        score = _objective(obs, new, x0, col, layout, ridge)
        if score < best[0]:
            best = (score, new, rounds)
        if _binding(obs, new, col, layout) == _binding(obs, x, col, layout):
            break
        x = new
    parameters, condition = _uncertainty(obs, best[1], x0, lo, hi, col, layout, ridge, refuse=refuse_unidentified)
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
    return CalibrationResult(
        profile=profile,
        residuals=residuals,
        rounds=best[2],
        groups=dict(groups),
        parameters=parameters,
        condition_number=condition,
    )


def _observations(cases: Sequence[CalibrationCase], *, overlap: bool) -> list[_Obs]:
    if not cases:
        raise UserError("calibration needs at least one measurement")
    obs: list[_Obs] = []
    for case in cases:
        per_stage = case.groups
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


# -- identification and uncertainty ---------------------------------------------------------------------------------


def _parameter_names(layout: _Layout) -> list[str]:
    hosts = [f"t_k[{st}]" for st in layout.host_stages] or ["t_k"]
    return [f"eta[{g}]" for g in layout.names] + ["eta_m", *hosts, "t_d"]


def _uncertainty(
    obs: Sequence[_Obs],
    x: Sequence[float],
    x0: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    col: Mapping[str, int],
    layout: _Layout,
    ridge: float,
    *,
    refuse: bool,
) -> tuple[tuple[FittedParameter, ...], float]:
    """Status, value and standard error of every parameter, and the condition number (see the module docstring).

    Parameters in a direction the data do not determine (a singular value below ``1/MAX_CONDITION`` of the largest,
    or more free parameters than observations) are a UserError naming them when ``refuse``, else reported as not
    identified (the ridge holds them near the prior)."""
    rows, _ = _linear_system(obs, x, x0, col, layout, ridge)
    J = np.asarray(rows[: len(obs)])  # data rows, in scaled unknowns z = x / x0
    z = np.asarray(x) / np.asarray(x0)
    names = _parameter_names(layout)
    seen = np.abs(J).max(axis=0) > 0
    bound = np.isclose(np.asarray(x), lo, rtol=1e-9, atol=0) | np.isclose(np.asarray(x), hi, rtol=1e-9, atol=0)
    free = np.flatnonzero(seen & ~bound)
    weak: set[int] = set()
    condition = 1.0
    if free.size:
        _, singular, vt = np.linalg.svd(J[:, free], full_matrices=True)
        smallest = singular[-1] if singular.size == free.size else 0.0
        condition = float(singular[0] / smallest) if smallest > 0 else float("inf")
        for k in range(free.size):
            if k >= singular.size or singular[k] * MAX_CONDITION < singular[0]:
                weak.update(int(free[i]) for i in np.flatnonzero(np.abs(vt[k]) > 0.1))
    if weak and refuse:
        raise UserError(
            f"calibration: the measurements do not tell {', '.join(names[j] for j in sorted(weak))} apart "
            f"(condition number {condition:.3g} > {MAX_CONDITION:.0g}); add measurements that vary them, or fit "
            "fewer efficiency groups"
        )
    identified = np.asarray([j for j in free if j not in weak], dtype=int)
    dof = len(obs) - identified.size
    errors = np.full(len(x), np.nan)
    if dof > 0 and identified.size:
        rss = float(np.sum((J @ z - np.sqrt([o.weight for o in obs])) ** 2))
        Ji = J[:, identified]
        covariance = rss / dof * np.linalg.pinv(Ji.T @ Ji)
        errors[identified] = np.sqrt(np.clip(np.diag(covariance), 0.0, None)) * np.asarray(x0)[identified]
    parameters = []
    for j, name in enumerate(names):
        if not seen[j]:
            status = "not seen (prior kept)"
        elif bound[j]:
            status = "at bound"
        else:
            status = "not identified (prior kept)" if j in weak else "fitted"
        is_efficiency = name.startswith("eta")
        value = 1.0 / x[j] if is_efficiency else x[j]
        se = None if np.isnan(errors[j]) else float(errors[j] / x[j] ** 2 if is_efficiency else errors[j])
        parameters.append(FittedParameter(name=name, value=float(value), std_error=se, status=status))
    return tuple(parameters), condition
