"""Bounded least squares against an exhaustive oracle: every split of the variables into free / at lower / at upper."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from llm_perf_opt.perf.bvls import bounded_least_squares, kkt_violation


def _objective(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((A @ x - b) ** 2))


def _exhaustive(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """The least objective over all 3^n active sets whose free solution lies in the box (the minimum is one)."""
    n, best = A.shape[1], float("inf")
    for held in itertools.product((None, "lo", "hi"), repeat=n):
        x = np.array([lo[j] if h == "lo" else hi[j] if h == "hi" else 0.0 for j, h in enumerate(held)])
        free = np.array([h is None for h in held])
        if free.any():
            x[free] = np.linalg.lstsq(A[:, free], b - A[:, ~free] @ x[~free], rcond=None)[0]
        if np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12):
            best = min(best, _objective(A, b, x))
    return best


def _problem(rng: np.random.Generator, *, ridge: bool) -> tuple[np.ndarray, ...]:
    m, n = int(rng.integers(1, 9)), int(rng.integers(1, 6))
    A = rng.normal(size=(m, n)) * np.exp(rng.normal(size=n))
    if ridge:  # full column rank, as the calibration's ridge rows make it
        A = np.vstack([A, 0.05 * np.eye(n)])
    b = rng.normal(size=A.shape[0]) * 4.0
    lo = rng.normal(size=n)
    hi = lo + np.abs(rng.normal(size=n)) * rng.choice([0.0, 0.1, 1.0, 10.0], size=n)
    return A, b, lo, hi


@pytest.mark.parametrize("ridge", [True, False])
def test_reaches_the_exhaustive_minimum(ridge: bool) -> None:
    rng = np.random.default_rng(7 if ridge else 11)
    for _ in range(150):
        A, b, lo, hi = _problem(rng, ridge=ridge)
        x = bounded_least_squares(A, b, lower=lo, upper=hi)
        assert np.all(x >= lo) and np.all(x <= hi)
        best = _exhaustive(A, b, lo, hi)
        assert _objective(A, b, x) <= best * (1 + 1e-10) + 1e-12
        assert kkt_violation(A, b, x, lower=lo, upper=hi) <= 1e-9 * (np.abs(A.T @ b).max() + 1.0)


def test_an_interior_minimum_is_the_plain_least_squares_solution() -> None:
    A = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([2.0, 1.0, 2.0])  # x = (1, 1) fits every row exactly
    x = bounded_least_squares(A, b, lower=np.array([0.0, 0.0]), upper=np.array([5.0, 5.0]))
    np.testing.assert_allclose(x, [1.0, 1.0], rtol=0, atol=1e-14)


def test_an_identity_problem_clips_to_the_box() -> None:
    b = np.array([-3.0, 0.5, 9.0])
    lo, hi = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 1.0, 2.0])
    x = bounded_least_squares(np.eye(3), b, lower=lo, upper=hi)
    np.testing.assert_array_equal(x, [-1.0, 0.5, 2.0])


def test_a_bound_that_binds_moves_the_other_variable() -> None:
    # min (x0 + x1 - 2)^2 + (x0 - x1)^2 with x0 <= 0.5: unbounded (1, 1); bounded x0 = 0.5, x1 = 1 (d/dx1 = 0)
    A = np.array([[1.0, 1.0], [1.0, -1.0]])
    x = bounded_least_squares(A, np.array([2.0, 0.0]), lower=np.array([-5.0, -5.0]), upper=np.array([0.5, 5.0]))
    np.testing.assert_allclose(x, [0.5, 1.0], rtol=0, atol=1e-14)


def test_a_column_no_data_row_touches_keeps_its_ridge_value_exactly() -> None:
    # the calibration's unseen parameters: only their ridge row (towards the prior, 1 in scaled units) holds them
    # (an SVD-based lstsq mixes the columns and gives 0.9999999999999996 here)
    rng = np.random.default_rng(0)
    data = np.hstack([rng.normal(size=(12, 5)) * np.exp(rng.normal(size=5) * 3), np.zeros((12, 1))])
    A = np.vstack([data, 0.1 * np.eye(6)])
    b = np.concatenate([rng.normal(size=12), 0.1 * np.ones(6)])
    x = bounded_least_squares(A, b, lower=np.full(6, -1e6), upper=np.full(6, 1e6))
    assert x[5] == 1.0


def test_equal_bounds_fix_a_variable() -> None:
    x = bounded_least_squares(np.eye(2), np.array([4.0, 4.0]), lower=np.array([1.0, 0.0]), upper=np.array([1.0, 9.0]))
    np.testing.assert_allclose(x, [1.0, 4.0], rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("lower", "upper", "message"),
    [
        ([0.0], [1.0, 2.0], "bounds must be 2 finite values"),
        ([0.0, -np.inf], [1.0, 2.0], "bounds must be 2 finite values"),
        ([0.0, 3.0], [1.0, 2.0], "at most its upper bound"),
    ],
)
def test_refuses_bounds_it_cannot_use(lower: list[float], upper: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bounded_least_squares(np.eye(2), np.ones(2), lower=np.array(lower), upper=np.array(upper))
