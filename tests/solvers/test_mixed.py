"""The population step alone: a linear mixed model from sufficient statistics, against
statsmodels' MixedLM and against its own objective."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sdfit.exceptions import DataError
from sdfit.solvers.mixed import Linearisation, Linearised, MixedModel, Population


def _random_slopes(seed=1, units=300):
    """y = (10 + a_u) + (2 + b_u) t + noise, 2-4 observations per unit, as the residuals
    ``φ0 + φ1 t - y`` linearised at φ = 0 (exactly: they are linear)."""
    rng = np.random.default_rng(seed)
    n = rng.integers(2, 5, units)
    t = np.where(np.arange(4) < n[:, None], rng.uniform(0, 10, (units, 4)), 0.0)
    mask = np.arange(4) < n[:, None]
    phi = np.array([10.0, 2.0]) + rng.standard_normal((units, 2)) @ np.array(
        [[2.0, 0.0], [0.5, 0.7]]).T
    y = np.where(mask, phi[:, :1] + phi[:, 1:] * t + rng.normal(0, 1.5, t.shape), 0.0)
    jac = np.stack([mask * 1.0, t], axis=2)
    model = MixedModel([True, True], np.ones((units, 1)), np.ones((2, 1), bool), True)
    lin = Linearised(model, Linearisation.at(np.zeros((units, 2)), -y, jac, n))
    return model, lin, (t, y, mask)


def test_maximum_likelihood_equals_mixedlm():
    import pandas as pd
    import statsmodels.formula.api as smf

    model, lin, (t, y, mask) = _random_slopes()
    pop, post, steps, converged = model.fit(lin, lin.start(np.zeros(2)))
    frame = pd.DataFrame({"y": y[mask], "t": t[mask], "g": np.nonzero(mask)[0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = smf.mixedlm("y ~ t", frame, groups="g", re_formula="~t").fit(
            reml=False, method=["bfgs"], gtol=1e-10, maxiter=5000)
    assert converged
    np.testing.assert_allclose(pop.coef[:, 0], ref.fe_params, rtol=1e-7)
    np.testing.assert_allclose(pop.omega, ref.cov_re, rtol=1e-6)
    np.testing.assert_allclose(pop.sigma2, ref.scale, rtol=1e-6)
    np.testing.assert_allclose(post.objective, -2 * ref.llf, rtol=1e-10)
    se = np.sqrt(np.diag(model.covariance(lin, pop)))[:2]
    np.testing.assert_allclose(se, ref.bse_fe, rtol=1e-4)


def test_gradient_is_the_derivative_of_the_objective():
    model, lin, _ = _random_slopes(units=50)
    pop = Population(np.array([[9.0], [2.5]]), np.array([[3.0, 0.4], [0.4, 0.8]]), 2.0)
    gradient = model.gradient(lin, pop)
    # natural coordinates: the coefficients, the lower triangle of Ω, σ²
    steps = [("coef", (0, 0)), ("coef", (1, 0)), ("omega", (0, 0)), ("omega", (1, 0)),
             ("omega", (1, 1)), ("sigma2", None)]
    for k, (what, index) in enumerate(steps):
        sides = []
        for h in (1e-5, -1e-5):
            coef, omega, s2 = pop.coef.copy(), pop.omega.copy(), pop.sigma2
            if what == "coef":
                coef[index] += h
            elif what == "omega":
                omega[index] += h
                omega[index[::-1]] = omega[index]
            else:
                s2 += h
            sides.append(lin.posterior(Population(coef, omega, s2)).objective)
        assert gradient[k] == pytest.approx((sides[0] - sides[1]) / 2e-5, rel=1e-5, abs=1e-5)


def test_collinear_covariates_are_refused():
    design = np.column_stack([np.ones(10), np.arange(10), 2 * np.arange(10)])
    with pytest.raises(DataError, match="collinear"):
        MixedModel([True], design, np.ones((1, 3), bool), True)


def test_compiled_posterior_equals_numpy():
    """The compiled per-unit posterior (all parameters pooled) is the NumPy code's
    arithmetic: the same means, covariances, sums of squares and objective."""
    from sdfit.solvers import mixed

    model, lin, _ = _random_slopes(units=80)
    if mixed._compiled() is None:
        pytest.skip("no C compiler: only the NumPy code runs")
    pop = Population(np.array([[9.0], [2.5]]), np.array([[3.0, 0.4], [0.4, 0.8]]), 2.0)
    fast = lin.posterior(pop)
    slow = Linearised(model, lin.lin, compiled=False).posterior(pop)
    assert lin.compiled is not None
    for a, b in ((fast.mean, slow.mean), (fast.cov, slow.cov), (fast.sse, slow.sse)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert fast.objective == pytest.approx(slow.objective, rel=1e-13)
