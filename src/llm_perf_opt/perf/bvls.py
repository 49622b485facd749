"""Bounded-variable linear least squares: ``argmin ||A x - b||^2`` subject to ``lower <= x <= upper`` (numpy only).

The calibration's step 2 (:mod:`llm_perf_opt.perf.calibrate`): a few observations, about ten parameters, each with
a finite lower and upper bound.  Solved by an active-set method in the manner of Stark and Parker's BVLS (P. B.
Stark, R. L. Parker, "Bounded-Variable Least-Squares: an Algorithm and Applications", Computational Statistics 10,
1995), itself Lawson and Hanson's NNLS with two bounds:

* every variable is *free* or *held* at one of its bounds; the free ones solve the least-squares problem with the
  held ones fixed (a QR factorisation; ``numpy.linalg.lstsq`` where their columns lack full rank).  When that
  solution leaves the box, the point moves towards it only as far as the first bound it meets (``alpha = min_j
  (bound_j - x_j) / (z_j - x_j)``), that variable is held there, and the free ones are solved again;
* once the free variables' solution is inside the box, the gradient ``g = A^T (A x - b)`` says whether a held variable
  should move off its bound (``g_j < 0`` at its lower bound, ``g_j > 0`` at its upper one: the objective falls
  inward); the one with the largest such ``|g_j|`` is freed, and the loop goes on.  None such: the Karush-Kuhn-Tucker
  conditions hold, and for a matrix of full column rank (the calibration's ridge rows make it so) the point is the
  unique minimum.

A freed variable whose solution at once heads out of the box again (rounding, where its gradient is nearly zero) is
not freed again before another variable is: the loop cannot cycle on it.  Left out: infinite bounds, sparse matrices,
rank-deficient problems' minimum-norm choice among equal minima (``lstsq`` picks one).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["bounded_least_squares", "kkt_violation"]

Array = NDArray[np.float64]
Mask = NDArray[np.bool_]


def bounded_least_squares(A: Array, b: Array, *, lower: Array, upper: Array) -> Array:
    """``argmin ||A x - b||^2`` over ``lower <= x <= upper`` (finite bounds, ``lower <= upper``); see the module."""
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    n = A.shape[1]
    if lo.shape != (n,) or hi.shape != (n,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"bounds must be {n} finite values each")
    if np.any(lo > hi):
        raise ValueError("every lower bound must be at most its upper bound")
    x = np.clip(np.linalg.lstsq(A, b, rcond=None)[0], lo, hi)
    free = (x > lo) & (x < hi)
    refused = np.zeros(n, dtype=bool)
    for _ in range(_max_rounds(n)):
        x, free = _settle(A, b, x, free, lo, hi)
        entering = _most_violated(A, b, x, free | refused, lo, hi)
        if entering is None:
            return x
        trial = free.copy()
        trial[entering] = True
        if _heads_out(A, b, x, trial, entering, lo, hi):
            refused[entering] = True  # rounding: freeing it would not move the point
            continue
        free = trial
        refused[:] = False
    raise ArithmeticError(f"bounded least squares did not converge in {_max_rounds(n)} rounds")


def kkt_violation(A: Array, b: Array, x: Array, *, lower: Array, upper: Array) -> float:
    """How far ``x`` is from a minimum, in gradient units: the largest ``|g_j|`` of an interior variable, ``-g_j`` at
    a lower bound, ``g_j`` at an upper one (``g = A^T (A x - b)``); 0 at the minimum of a full-rank problem."""
    g = A.T @ (A @ x - b)
    at_lo, at_hi = x <= lower, x >= upper
    inside = ~(at_lo | at_hi)
    parts = [np.abs(g[inside]), -g[at_lo & ~at_hi], g[at_hi & ~at_lo], np.zeros(1)]
    return float(max(np.max(p) if p.size else 0.0 for p in parts))


def _max_rounds(n: int) -> int:
    """Each round frees one variable or holds at least one; far more than a convergent run needs."""
    return 30 * (n + 1)


def _solve_free(A: Array, b: Array, x: Array, free: Mask) -> Array:
    """The free variables' least-squares values with the held ones fixed where they are: by a QR factorisation where
    the free columns have full rank (a column the data rows do not touch then keeps its own row's value exactly),
    else by ``lstsq``'s minimum-norm solution."""
    rest = b - A[:, ~free] @ x[~free]
    columns = A[:, free]
    if columns.shape[0] >= columns.shape[1]:
        q, r = np.linalg.qr(columns)
        diagonal = np.abs(np.diag(r))
        if diagonal.min() > 1e-12 * max(diagonal.max(), 1e-300):
            return np.asarray(np.linalg.solve(r, q.T @ rest), dtype=np.float64)
    return np.asarray(np.linalg.lstsq(columns, rest, rcond=None)[0], dtype=np.float64)


def _settle(A: Array, b: Array, x: Array, free: Mask, lo: Array, hi: Array) -> tuple[Array, Mask]:
    """Solve the free variables, stepping to the first bound met and holding it, until the solution is inside."""
    x, free = x.copy(), free.copy()
    while free.any():
        z = _solve_free(A, b, x, free)
        xf, lof, hif = x[free], lo[free], hi[free]
        out = (z < lof) | (z > hif)
        if not out.any():
            x[free] = z
            return x, free
        bound = np.where(z > hif, hif, lof)
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = np.where(out, (bound - xf) / (z - xf), np.inf)
        alpha = float(np.clip(np.min(steps), 0.0, 1.0))
        stepped = np.clip(xf + alpha * (z - xf), lof, hif)
        hits = out & (steps <= alpha)
        stepped[hits] = bound[hits]
        x[free] = stepped
        idx = np.flatnonzero(free)
        free[idx[hits | (stepped <= lof) | (stepped >= hif)]] = False
    return x, free


def _most_violated(A: Array, b: Array, x: Array, skip: Mask, lo: Array, hi: Array) -> int | None:
    """The held variable (not in ``skip``) whose bound holds the objective up the most, or None."""
    g = A.T @ (A @ x - b)
    scale = np.max(np.abs(A.T @ b)) + np.max(np.abs(g)) + 1.0
    pull = np.where(x <= lo, -g, 0.0) + np.where(x >= hi, g, 0.0)  # > 0: the objective falls moving inward
    pull[skip | (lo == hi)] = 0.0
    j = int(np.argmax(pull))
    return j if pull[j] > 1e-13 * scale else None


def _heads_out(A: Array, b: Array, x: Array, trial: Mask, j: int, lo: Array, hi: Array) -> bool:
    """Whether freeing ``j`` has its solution leave the box on the side of the bound it is held at."""
    z = _solve_free(A, b, x, trial)
    zj = z[int(np.count_nonzero(trial[:j]))]
    return bool(zj <= lo[j] if x[j] <= lo[j] else zj >= hi[j])
