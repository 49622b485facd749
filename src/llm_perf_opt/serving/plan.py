"""Capacity plans: per device the highest-throughput concurrency that meets an SLA, GPUs for a daily volume, cost.

For each device the closed-loop simulation runs over a concurrency grid (powers of two up to the runtime's
``max_num_seqs`` or :data:`GRID_CAP`, plus that value); a point *meets* the SLA when its p90 TTFT and p90 TPOT are
both within the targets. The device's plan is the feasible point with the most pages per second (ties: the lower
concurrency).
``GPUs = ceil(target pages/day / pages/day per GPU)`` data-parallel replicas; cost per million pages =
``price per GPU-hour * 24 / pages per day per GPU * 1e6``. The winner has the most pages/day per GPU, or the lowest
cost per million pages when every device has a price.

Why a device wins is read from its chosen point: ``memory`` when the KV cache bounds the batch (preemptions, or the
pool at least 95% full at the peak), else the decode step's time against two floors - ``bandwidth`` when it is
within 1.5x of (weights read + KV read) / DRAM bandwidth, ``compute`` when FLOPs / dense peak is at least half of it,
otherwise ``launch`` (kernel launches and host time dominate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import field, frozen

from llm_perf_opt.errors import UserError
from llm_perf_opt.serving.simulate import SimulationResult

__all__ = [
    "BOUNDS",
    "GRID_CAP",
    "DevicePlan",
    "PlanPoint",
    "PlanResult",
    "concurrency_grid",
    "make_plan",
    "parse_prices",
]

BOUNDS = ("compute", "bandwidth", "memory", "launch")


GRID_CAP = 1024
"""Largest concurrency a plan simulates (SGLang admits up to 4096; DeepSeek-OCR's TPOT targets bind well before)."""


def concurrency_grid(max_num_seqs: int) -> tuple[int, ...]:
    """``1, 2, 4, ...`` below ``min(max_num_seqs, GRID_CAP)``, then that value itself."""
    top = min(max_num_seqs, GRID_CAP)
    grid, c = [], 1
    while c < top:
        grid.append(c)
        c *= 2
    grid.append(top)
    return tuple(grid)


def parse_prices(text: str | None, devices: Sequence[str]) -> dict[str, float]:
    """``"a100-40gb=1.29,h100-sxm=2.99"`` -> USD per GPU-hour by device; each must be one of ``devices``."""
    if not text:
        return {}
    prices: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = -1.0
        if not sep or not price > 0 or not math.isfinite(price):
            raise UserError(f"--price takes DEVICE=USD_PER_HOUR pairs separated by commas (e.g. l4=0.8), got {item!r}")
        if name.strip() not in devices:
            raise UserError(f"--price names {name.strip()!r}, which is not in --devices ({', '.join(devices)})")
        prices[name.strip()] = price
    return prices


@frozen(kw_only=True)
class PlanPoint:
    """One simulated (device, concurrency)."""

    concurrency: int
    pages_per_s: float
    ttft_p90_ms: float
    tpot_p90_ms: float
    meets_sla: bool
    preemptions: int
    kv_peak_usage: float


@frozen(kw_only=True)
class DevicePlan:
    """A device's grid and its chosen point (None when no point meets the SLA)."""

    device: str
    points: tuple[PlanPoint, ...]
    chosen: PlanPoint | None
    bound: str = field(default="", metadata={"help": "compute, bandwidth, memory or launch at the chosen point"})
    bound_detail: str = field(default="", metadata={"help": "the numbers behind the bound"})
    price_per_hour: float | None = None

    @property
    def pages_per_day(self) -> float:
        """Pages per day per GPU at the chosen point (0 if none), rounded to 0.1 page as every output shows it."""
        return round(self.chosen.pages_per_s * 86_400, 1) if self.chosen else 0.0

    def gpus_for(self, pages_per_day: float) -> int | None:
        """Replicas for ``pages_per_day`` (None if the SLA is unreachable here)."""
        return math.ceil(pages_per_day / self.pages_per_day) if self.chosen and self.pages_per_day > 0 else None

    @property
    def cost_per_million_pages(self) -> float | None:
        """USD per million pages at the chosen point (None without a price or a plan)."""
        if self.price_per_hour is None or not self.chosen or self.pages_per_day <= 0:
            return None
        return self.price_per_hour * 24 / self.pages_per_day * 1e6

    def closest(self, ttft_ms: float, tpot_ms: float) -> PlanPoint:
        """The point nearest the SLA: the smallest worst ratio of p90 to target."""
        return min(self.points, key=lambda p: (max(p.ttft_p90_ms / ttft_ms, p.tpot_p90_ms / tpot_ms), p.concurrency))


@frozen(kw_only=True)
class PlanResult:
    """Every device's plan, the target, and the verdict."""

    plans: tuple[DevicePlan, ...]
    pages_per_day: float
    slo_ttft_p90_ms: float
    slo_tpot_p90_ms: float
    winner: str | None
    verdict: str = field(metadata={"help": "one line: who wins and why, or the closest device when none meets"})

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return {
            "target": {
                "pages_per_day": self.pages_per_day,
                "slo_ttft_p90_ms": self.slo_ttft_p90_ms,
                "slo_tpot_p90_ms": self.slo_tpot_p90_ms,
            },
            "winner": self.winner,
            "verdict": self.verdict,
            "devices": [
                {
                    "device": p.device,
                    "concurrency": p.chosen.concurrency if p.chosen else None,
                    "pages_per_day_per_gpu": round(p.pages_per_day, 1),
                    "gpus": p.gpus_for(self.pages_per_day),
                    "price_per_hour": p.price_per_hour,
                    "cost_per_million_pages": _round(p.cost_per_million_pages),
                    "ttft_p90_ms": p.chosen.ttft_p90_ms if p.chosen else None,
                    "tpot_p90_ms": p.chosen.tpot_p90_ms if p.chosen else None,
                    "bound": p.bound,
                    "bound_detail": p.bound_detail,
                    "grid": [
                        {
                            "concurrency": q.concurrency,
                            "pages_per_s": round(q.pages_per_s, 6),
                            "ttft_p90_ms": q.ttft_p90_ms,
                            "tpot_p90_ms": q.tpot_p90_ms,
                            "meets_sla": q.meets_sla,
                            "preemptions": q.preemptions,
                        }
                        for q in p.points
                    ],
                }
                for p in self.plans
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _point(concurrency: int, result: SimulationResult, ttft_ms: float, tpot_ms: float) -> PlanPoint:
    m = result.metrics
    ttft, tpot = m["ttft_ms"]["p90"], m["tpot_ms"]["p90"]
    return PlanPoint(
        concurrency=concurrency,
        pages_per_s=m["throughput"]["pages_per_s"],
        ttft_p90_ms=ttft,
        tpot_p90_ms=tpot,
        meets_sla=ttft <= ttft_ms and tpot <= tpot_ms,
        preemptions=m["preemptions"],
        kv_peak_usage=m["memory"]["kv_peak_usage"],
    )


Simulator = Callable[[str, int], SimulationResult]
"""``(device, concurrency) -> SimulationResult`` of the plan's workload."""
BoundFn = Callable[[str, PlanPoint], tuple[str, str]]
"""``(device, chosen point) -> (bound, detail)`` for the non-memory bounds."""


def _bound(device: str, point: PlanPoint, classify: BoundFn | None) -> tuple[str, str]:
    if point.preemptions or point.kv_peak_usage >= 0.95:
        return "memory", f"KV cache {point.kv_peak_usage:.0%} full at the peak, {point.preemptions} preemptions"
    return classify(device, point) if classify is not None else ("", "")


def make_plan(
    *,
    devices: Sequence[str],
    grids: Mapping[str, Sequence[int]],
    simulate_point: Simulator,
    pages_per_day: float,
    slo_ttft_p90_ms: float,
    slo_tpot_p90_ms: float,
    prices: Mapping[str, float] | None = None,
    classify: BoundFn | None = None,
) -> PlanResult:
    """Simulate every device over its grid and pick (see the module docstring)."""
    if not 0 < pages_per_day < math.inf:
        raise UserError(f"--pages-per-day must be a finite number > 0, got {pages_per_day}")
    if not slo_ttft_p90_ms > 0 or not slo_tpot_p90_ms > 0:
        raise UserError("--slo-ttft-p90-ms and --slo-tpot-p90-ms must be > 0 (milliseconds)")
    prices = prices or {}
    plans = []
    for device in devices:
        points = tuple(_point(c, simulate_point(device, c), slo_ttft_p90_ms, slo_tpot_p90_ms) for c in grids[device])
        feasible = [p for p in points if p.meets_sla]
        chosen = max(feasible, key=lambda p: (p.pages_per_s, -p.concurrency)) if feasible else None
        bound, detail = _bound(device, chosen, classify) if chosen else ("", "")
        plans.append(
            DevicePlan(
                device=device,
                points=points,
                chosen=chosen,
                bound=bound,
                bound_detail=detail,
                price_per_hour=prices.get(device),
            )
        )
    winner, verdict = _verdict(
        plans, slo_ttft_p90_ms, slo_tpot_p90_ms, all(d in prices for d in devices), pages_per_day=pages_per_day
    )
    return PlanResult(
        plans=tuple(plans),
        pages_per_day=pages_per_day,
        slo_ttft_p90_ms=slo_ttft_p90_ms,
        slo_tpot_p90_ms=slo_tpot_p90_ms,
        winner=winner,
        verdict=verdict,
    )


def _verdict(
    plans: Sequence[DevicePlan], ttft_ms: float, tpot_ms: float, priced: bool, *, pages_per_day: float
) -> tuple[str | None, str]:
    ok = [p for p in plans if p.chosen]
    if not ok:
        best = min(
            plans,
            key=lambda p: max(
                p.closest(ttft_ms, tpot_ms).ttft_p90_ms / ttft_ms, p.closest(ttft_ms, tpot_ms).tpot_p90_ms / tpot_ms
            ),
        )
        near = best.closest(ttft_ms, tpot_ms)
        return None, (
            f"no device meets p90 TTFT <= {ttft_ms:g} ms and p90 TPOT <= {tpot_ms:g} ms; closest: {best.device} at "
            f"concurrency {near.concurrency} (p90 TTFT {near.ttft_p90_ms:,.1f} ms, p90 TPOT {near.tpot_p90_ms:,.2f} ms)"
        )
    if priced:
        ranked = sorted(ok, key=lambda p: (p.cost_per_million_pages or math.inf, p.device))
        win, other = ranked[0], next(iter(ranked[1:]), None)
        basis = f"${win.cost_per_million_pages:,.2f} per million pages"
        versus = (
            f", {(other.cost_per_million_pages or 0) / (win.cost_per_million_pages or 1):.2f}x cheaper than "
            f"{other.device} (${other.cost_per_million_pages:,.2f})"
            if other is not None
            else ""
        )
    else:
        ranked = sorted(ok, key=lambda p: (-p.pages_per_day, p.device))
        win, other = ranked[0], next(iter(ranked[1:]), None)
        basis = f"{win.pages_per_day:,.0f} pages/day per GPU"
        versus = (
            f", {win.pages_per_day / other.pages_per_day:.2f}x the pages/day of {other.device}"
            if other is not None and other.pages_per_day > 0
            else ""
        )
    why = f"; {win.bound} bound ({win.bound_detail})" if win.bound else ""
    return (
        win.device,
        f"{win.device} wins: {basis} at concurrency {win.chosen.concurrency if win.chosen else 0}{versus}, "
        f"{win.gpus_for(pages_per_day):,} GPU(s) for {pages_per_day:,.0f} pages/day{why}",
    )
