"""The batched Levenberg–Marquardt solver against SciPy, planted parameters and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from sdfit.datasets import synthetic_panel
from sdfit.fitting import Payload, fit_chunk
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.solvers import LevenbergMarquardt, ScipyLeastSquares, Status

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])


def test_no_worse_than_scipy_on_real_counties(aging_chain, census):
    """On a random sample of counties, every unit converges and sdfit's SSE is no worse
    than SciPy's least_squares (trf) run on the same residuals."""
    rows = np.random.default_rng(7).choice(len(census), 12, replace=False)
    task, data = resolve(RECIPE, aging_chain, census.take(rows))
    ours = fit_chunk(Payload(task, LevenbergMarquardt()), data)
    theirs = fit_chunk(Payload(task, ScipyLeastSquares()), data)
    assert ours.success.all(), ours.messages
    assert (ours.sse <= theirs.sse + 1e-6).all(), (ours.sse, theirs.sse)
    # the recipe's problem has an exact fit: both reach it
    assert ours.sse.max() < 1e-3
    # and sdfit needs fewer model evaluations than SciPy's per-unit solver
    assert ours.nfev.mean() < theirs.nfev.mean()


def _planted(model, n=300, seed=3, bounds=(-0.02, 0.08)):
    planted = {f"dec {k} loss rate": bounds for k in range(2, 10)}
    panel, truth = synthetic_panel(model, n, planted | {"dec 1 loss rate": (0.05, 0.05)},
                                   {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)},
                                   [2010], seed=seed)
    return panel, truth[list(planted)].to_numpy()


IDENTIFIABLE = Problem([Parameter("dec 1 loss rate", fixed=0.05),
                        Parameter("dec * loss rate", x0=0.05)],
                       target_times=[2010], initial_time=2000, exclude=["dec 1"])


@pytest.mark.parametrize("broyden", [True, False])
def test_recovers_planted_parameters(aging_chain, broyden):
    panel, truth = _planted(aging_chain)
    task, data = resolve(IDENTIFIABLE, aging_chain, panel)
    solution = fit_chunk(Payload(task, LevenbergMarquardt(broyden=broyden)), data)
    assert solution.success.all()
    np.testing.assert_allclose(solution.x, truth, rtol=0, atol=1e-8)


def test_bounds_are_respected_and_active_where_the_truth_lies_outside(aging_chain):
    panel, truth = _planted(aging_chain, n=16)
    problem = Problem([Parameter("dec 1 loss rate", fixed=0.05),
                       Parameter("dec * loss rate", x0=0.03, bounds=(0.0, 0.06))],
                      target_times=[2010], initial_time=2000, exclude=["dec 1"])
    task, data = resolve(problem, aging_chain, panel)
    ours = fit_chunk(Payload(task, LevenbergMarquardt()), data)
    assert ((ours.x >= 0.0) & (ours.x <= 0.06)).all()
    assert (np.isclose(ours.x, 0.0) | np.isclose(ours.x, 0.06)).any()  # some bounds bind
    inside = ((truth > 0) & (truth < 0.06)).all(axis=1)
    np.testing.assert_allclose(ours.x[inside], truth[inside], atol=1e-8)
    theirs = fit_chunk(Payload(task, ScipyLeastSquares()), data)
    assert (ours.sse <= theirs.sse * (1 + 1e-6) + 1e-6).all()


def test_nan_residuals_fail_that_unit_only():
    def fun(x, units):
        r = x - np.array([[1.0, 2.0]])
        return np.where((units == 1)[:, None], np.nan, r)

    solution = LevenbergMarquardt().solve(fun, np.zeros((3, 2)), -np.inf, np.inf)
    assert solution.status.tolist()[1] == Status.NOT_FINITE
    assert not solution.success[1] and solution.success[[0, 2]].all()
    assert "NaN" in solution.messages[1]
    np.testing.assert_allclose(solution.x[[0, 2]], [[1, 2], [1, 2]])


def test_nan_away_from_the_start_is_avoided_not_accepted():
    """A trial step into a region where the model breaks is rejected like a bad step."""
    def fun(x, units):
        return np.where(x > 1.5, np.nan, x - 1.0)

    solution = LevenbergMarquardt().solve(fun, np.full((2, 1), 3.0 - 1.6), -np.inf, np.inf)
    assert solution.success.all()
    np.testing.assert_allclose(solution.x, 1.0)


def test_max_nfev_is_a_status_not_an_exception():
    def rosenbrock(x, units):
        return np.stack([10 * (x[:, 1] - x[:, 0] ** 2), 1 - x[:, 0]], axis=1)

    solution = LevenbergMarquardt(max_nfev=6).solve(rosenbrock, [[-1.2, 1.0]], -np.inf, np.inf)
    assert solution.status[0] == Status.MAX_NFEV and not solution.success[0]
    solution = LevenbergMarquardt().solve(rosenbrock, [[-1.2, 1.0]], -np.inf, np.inf)
    np.testing.assert_allclose(solution.x[0], [1, 1], atol=1e-8)


@pytest.mark.parametrize("n", [1, 7])
def test_each_unit_is_independent_of_its_batch(n):
    """A unit's answer does not depend on which other units share its batch."""
    rng = np.random.default_rng(0)
    targets = rng.uniform(-2, 2, (n, 3))

    def fun(x, units):
        return np.concatenate([np.exp(x) - np.exp(targets[units]), x - targets[units]], axis=1)

    together = LevenbergMarquardt().solve(fun, np.zeros((n, 3)), -np.inf, np.inf)
    alone = [LevenbergMarquardt().solve(lambda x, u, i=i: fun(x, np.full_like(u, i)),
                                        np.zeros((1, 3)), -np.inf, np.inf) for i in range(n)]
    np.testing.assert_array_equal(together.x, np.concatenate([a.x for a in alone]))


def test_broyden_updates_save_evaluations_on_the_recipe(aging_chain, census):
    task, data = resolve(RECIPE, aging_chain, census.head(200))
    secant = fit_chunk(Payload(task, LevenbergMarquardt(broyden=True)), data)
    plain = fit_chunk(Payload(task, LevenbergMarquardt(broyden=False)), data)
    assert secant.success.all() and plain.success.all()
    assert secant.nfev.sum() < 0.7 * plain.nfev.sum()
    assert (secant.sse < 1e-3).all()


def test_final_jacobian_is_the_true_jacobian_at_the_solution():
    """Diagnostics use Solution.jacobian: it must be a finite difference at the solution,
    not a secant approximation."""
    rng = np.random.default_rng(2)
    a = rng.uniform(0.5, 2.0, (20, 3))

    def fun(x, units):
        t = a[units]
        return np.stack([np.exp(x[:, 0]) - t[:, 0], x[:, 0] * x[:, 1] - t[:, 1],
                         x[:, 1] ** 2 - t[:, 2], x[:, 0] + x[:, 1]], axis=1)

    solution = LevenbergMarquardt().solve(fun, np.ones((20, 2)), -np.inf, np.inf)
    x0, x1 = solution.x.T
    exact = np.zeros((20, 4, 2))
    exact[:, 0, 0], exact[:, 1, 0], exact[:, 1, 1] = np.exp(x0), x1, x0
    exact[:, 2, 1], exact[:, 3, 0], exact[:, 3, 1] = 2 * x1, 1, 1
    assert solution.success.all()
    np.testing.assert_allclose(solution.jacobian, exact, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(8, 8), None])  # the census's build and the general one
def test_compiled_step_is_numpys_and_each_units_own(shape):
    """lm.c's damped Gauss–Newton step (its 8 units side by side in one Cholesky) equals
    NumPy's solve of the same damped normal equations to round-off; a unit gets the same
    bits alone as among others; held parameters stay put; a unit whose damped matrix is
    not positive definite (mu underflowed on a zero column, or NaN in its Jacobian) falls
    back to the LU solve and gets its NaN step."""
    import ctypes

    from sdfit.solvers import lm

    library = lm._native(shape)
    if library is None:
        pytest.skip("no C compiler")
    n, m, p = 11, 8, 8  # not a multiple of the 8 lanes
    rng = np.random.default_rng(5)
    x = rng.uniform(0.1, 0.9, (n, p))
    jac, r = rng.normal(size=(n, m, p)), rng.normal(size=(n, m))
    lower, upper = np.zeros((n, p)), np.ones((n, p))
    mu = rng.uniform(1e-4, 1e-1, n)
    x[2, 3], jac[2, :, 3] = 0.0, np.sign(r[2]) * np.abs(jac[2, :, 3])  # at 0, gradient out
    jac[5, :, 1], mu[5] = 0.0, 0.0  # zero column, no damping: singular
    jac[9, 0, 0] = np.nan
    sse, diag = np.einsum("ij,ij->i", r, r), np.einsum("ijk,ijk->ik", jac, jac)
    diag[5, 1] = 1.0
    ptr = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731

    def propose(work):
        work = np.asarray(work, dtype=np.int64)
        trial, step, d = (np.empty((len(work), p)) for _ in range(3))
        done_g = np.empty(len(work), dtype=np.uint8)
        library.lm_propose(len(work), ptr(work), m, p, ptr(x), ptr(jac), ptr(r), ptr(sse),
                           ptr(diag), ptr(mu), ptr(lower), ptr(upper), 1e-10, ptr(trial),
                           ptr(step), ptr(d), ptr(done_g))
        return trial

    together = propose(range(n))
    for u in range(n):
        np.testing.assert_array_equal(propose([u])[0], together[u])
    assert np.isnan(together[[5, 9]]).all()
    assert together[2, 3] == 0.0
    for u in set(range(n)) - {5, 9}:
        g = jac[u].T @ r[u]
        free = ~(((x[u] <= lower[u]) & (g > 0)) | ((x[u] >= upper[u]) & (g < 0)))
        d = np.maximum(diag[u], diag[u].max() * np.finfo(float).eps)
        A = jac[u].T @ jac[u] + mu[u] * np.diag(d)
        A = np.where(free[:, None] & free[None, :], A, 0.0) + np.diag(~free)
        expected = np.clip(x[u] - np.linalg.solve(A, np.where(free, g, 0.0)), 0, 1)
        np.testing.assert_allclose(together[u], expected, rtol=1e-10, atol=1e-12)
