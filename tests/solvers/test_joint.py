"""Shared parameters: the joint Schur-complement solver against planted values, an exact
linear solution and SciPy's dense solve of the same joint problem."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from sdfit.calibrate import fit
from sdfit.data import from_wide
from sdfit.datasets import synthetic_panel
from sdfit.objective import Objective
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.solvers import LevenbergMarquardt, Status
from sdfit.solvers.joint import solve_shared

LOCAL = [f"dec {k} loss rate" for k in range(2, 10)]
TIMES = [2005, 2010]
SHARED = Problem([Parameter("dec 1 loss rate", x0=0.05, shared=True),
                  Parameter("dec * loss rate", x0=0.05)],
                 target_times=TIMES, initial_time=2000, exclude=["dec 1"])


def _panel(model, n, seed, noise=0.0):
    planted = {r: (-0.02, 0.08) for r in LOCAL} | {"dec 1 loss rate": (0.031, 0.031)}
    panel, truth = synthetic_panel(model, n, planted,
                                   {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)},
                                   TIMES, seed=seed)
    if noise:
        frame = panel.frame.copy()
        targets = [c for c in frame.columns if c[0] != 2000]
        frame[targets] += np.random.default_rng(seed).normal(0, noise, (n, len(targets)))
        panel = from_wide(frame, "<noisy>")
    return panel, truth


def test_recovers_planted_shared_and_per_unit_rates(aging_chain):
    panel, truth = _panel(aging_chain, 200, seed=4)
    result = fit(aging_chain, panel, SHARED, progress=False)
    table = result.table
    assert table["success"].all() and result.run.backend == "joint (in process)"
    assert table["dec 1 loss rate"].nunique() == 1  # one value, repeated in every row
    np.testing.assert_allclose(table["dec 1 loss rate"], 0.031, atol=1e-9)
    np.testing.assert_allclose(table[LOCAL].to_numpy(), truth[LOCAL].to_numpy(), atol=1e-8)
    assert table["dec 1 loss rate_identifiable"].all()
    core = ["unit", "dec 1 loss rate", *LOCAL, "sse", "success", "status", "message", "nfev"]
    assert list(table.columns[:len(core)]) == core  # the same table format as unshared fits


def test_matches_scipys_dense_solve_of_the_joint_problem(aging_chain):
    """With noise, the optimum and the shared standard error equal SciPy's on the dense
    (1 + 8 N)-parameter problem."""
    n = 12
    panel, _ = _panel(aging_chain, n, seed=5, noise=15.0)
    result = fit(aging_chain, panel, SHARED, progress=False)
    task, data = resolve(SHARED, aging_chain, panel)
    p = len(task.parameters)
    objective = Objective(task, data)

    def joint(z):
        x = np.column_stack([np.full(n, z[0]), z[1:].reshape(n, p - 1)])
        return objective.residuals(x, np.arange(n)).ravel()

    dense = least_squares(joint, np.full(1 + n * (p - 1), 0.05), method="lm", xtol=1e-12,
                          ftol=1e-12, gtol=1e-12)
    ours = result.table[task.parameters.names].to_numpy()
    np.testing.assert_allclose(ours[0, 0], dense.x[0], rtol=1e-6)
    np.testing.assert_allclose(ours[:, 1:].ravel(), dense.x[1:], rtol=1e-5, atol=1e-8)
    assert result.table["sse"].sum() <= 2 * dense.cost * (1 + 1e-9)
    dof = int(data.n_obs.sum()) - len(dense.x)
    cov = 2 * dense.cost / dof * np.linalg.inv(dense.jac.T @ dense.jac)
    np.testing.assert_allclose(result.table["dec 1 loss rate_stderr"],
                               np.sqrt(cov[0, 0]), rtol=1e-2)
    local_se = result.table[[f"{r}_stderr" for r in LOCAL]].to_numpy().ravel()
    np.testing.assert_allclose(local_se, np.sqrt(np.diag(cov)[1:]), rtol=1e-2)


def test_linear_joint_problem_matches_numpys_lstsq():
    """r_u = (l_u + s - y_u1, l_u - a_u s - y_u2, l_u / 2 - y_u3) with s shared by 30 units:
    the exact least-squares solution of the (30 + 1)-unknown linear system is lstsq's."""
    rng = np.random.default_rng(3)
    n = 30
    a, y = rng.uniform(0.5, 2, n), rng.normal(size=(n, 3))

    def fun(x, units):
        s, own = x[:, 0], x[:, 1]
        return np.stack([own + s - y[units, 0], own - a[units] * s - y[units, 1],
                         0.5 * own - y[units, 2]], axis=1)

    solution = solve_shared(fun, np.zeros((n, 2)), -np.inf, np.inf, np.array([True, False]),
                            LevenbergMarquardt())
    design = np.zeros((3 * n, n + 1))
    design[0::3, 0], design[1::3, 0] = 1, -a
    design[0::3, 1:] = design[1::3, 1:] = np.eye(n)
    design[2::3, 1:] = 0.5 * np.eye(n)
    exact = np.linalg.lstsq(design, y.ravel(), rcond=None)[0]
    assert (solution.status > 0).all()
    np.testing.assert_allclose(solution.x[:, 0], exact[0], atol=1e-9)
    np.testing.assert_allclose(solution.x[:, 1], exact[1:], atol=1e-9)


def test_bounds_hold_and_a_broken_unit_fails_alone():
    y = np.array([1.0, 2.0, 3.0, 4.0])

    def fun(x, units):
        r = np.stack([x[:, 0] + x[:, 1] - y[units], x[:, 1] - 0.5 * y[units]], axis=1)
        return np.where((units == 2)[:, None], np.nan, r)

    solution = solve_shared(fun, np.zeros((4, 2)), [-np.inf, -np.inf], [0.2, np.inf],
                            np.array([True, False]), LevenbergMarquardt())
    assert solution.status[2] == Status.NOT_FINITE
    assert (solution.status[[0, 1, 3]] > 0).all()
    assert (solution.x[:, 0] == solution.x[0, 0]).all() and solution.x[0, 0] <= 0.2


def test_ridge_on_a_shared_parameter_is_refused():
    from sdfit import SpecError

    with pytest.raises(SpecError, match="shared"):
        Parameter("dec 1 loss rate", shared=True, ridge=1.0)
