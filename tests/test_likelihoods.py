"""Likelihoods and robust losses: sdfit's batched least squares on transformed residuals
reaches the optimum an independent per-unit fit reaches (SciPy's optimisers on
scipy.stats' log-likelihoods, or least_squares' own robust losses), to 1e-6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import sdfit
from sdfit import Parameter, Problem
from sdfit.data import read_panel

GROWTH = """{UTF-8}
population = INTEG(growth, 10)
~~|
growth = rate * population * (1 - population / capacity)
~~|
rate = 0.5
~~|
capacity = 500
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 20
~~|
TIME STEP = 0.25
~~|
SAVEPER = TIME STEP
~~|
"""
TIMES = np.arange(1.0, 20.0, 1.5)
PARAMS = ["rate", "capacity"]


@pytest.fixture(scope="module")
def growth(tmp_path_factory):
    path = tmp_path_factory.mktemp("growth") / "growth.mdl"
    path.write_text(GROWTH)
    return sdfit.load_model(path)


def simulate(model, rate, capacity):
    sim = model.run(1, params={"rate": rate, "capacity": capacity}, return_times=TIMES,
                    return_columns=["population"])
    return sim.values["population"][0]


def panel(model, draw, n_units=5, seed=0):
    """Units with planted rate and capacity, observations drawn by ``draw(rng, mean)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(n_units):
        mean = simulate(model, rng.uniform(0.3, 0.7), rng.uniform(300, 800))
        for t, y in zip(TIMES, draw(rng, mean), strict=True):
            rows.append({"unit": unit, "t": t, "population": y})
    return read_panel(pd.DataFrame(rows), units=["unit"], time="t")


def reference(model, y, nll, extra: list[float]):
    """Minimise ``nll(mean, y, *extra)`` over (log rate, log capacity, *extra) with SciPy,
    from the problem's x0: Nelder–Mead, then BFGS to polish."""
    def objective(z):
        mean = simulate(model, np.exp(z[0]), np.exp(z[1]))
        value = nll(mean, y, *z[2:])
        return value if np.isfinite(value) else 1e300

    z = np.array([np.log(0.45), np.log(600.0), *extra])
    for method, options in (("Nelder-Mead", {"xatol": 1e-11, "fatol": 1e-13, "maxiter": 20000,
                                             "maxfev": 20000}),
                            ("BFGS", {"gtol": 1e-10})):
        z = optimize.minimize(objective, z, method=method, options=options).x
    return objective(z)


def fit(model, data, **options):
    problem = Problem([Parameter("rate", x0=0.45, bounds=(0.01, 5)),
                       Parameter("capacity", x0=600, bounds=(10, 1e5))], **options)
    return sdfit.fit(model, data, problem, backend="serial", progress=False).table


def _observed(data, unit):
    rows = data.unit == unit
    return data.value[rows]


def test_gaussian_nll_is_the_profiled_maximum_likelihood(growth):
    data = panel(growth, lambda rng, m: m + rng.normal(0, 15, m.shape))
    table = fit(growth, data)
    for u in range(5):
        y = _observed(data, u)
        ref = reference(growth, y, lambda m, y, s: -stats.norm.logpdf(y, m, np.exp(s)).sum(),
                        [np.log(10.0)])
        assert table["nll"][u] == pytest.approx(ref, rel=1e-6)
        assert table["aic"][u] == pytest.approx(2 * 3 + 2 * ref, rel=1e-6)


def test_lognormal_errors_on_the_log_scale(growth):
    data = panel(growth, lambda rng, m: m * np.exp(rng.normal(0, 0.1, m.shape)), seed=1)
    table = fit(growth, data, likelihood="lognormal")
    for u in range(5):
        y = _observed(data, u)
        ref = reference(growth, y, lambda m, y, s: -stats.lognorm.logpdf(
            y, np.exp(s), scale=m).sum() if (m > 0).all() else np.inf, [np.log(0.1)])
        assert table["nll"][u] == pytest.approx(ref, rel=1e-6)


@pytest.mark.slow
def test_poisson_counts(growth):
    data = panel(growth, lambda rng, m: rng.poisson(m).astype(float), seed=2)
    table = fit(growth, data, likelihood="poisson")
    assert table["success"].all()
    for u in range(5):
        y = _observed(data, u)
        ref = reference(growth, y, lambda m, y: -stats.poisson.logpmf(y, m).sum(), [])
        assert table["nll"][u] == pytest.approx(ref, rel=1e-6)


@pytest.mark.slow
def test_negative_binomial_counts_with_a_dispersion_per_unit(growth):
    def draw(rng, m, alpha=0.05):
        return rng.negative_binomial(1 / alpha, 1 / (1 + alpha * m)).astype(float)

    data = panel(growth, draw, seed=3)
    table = fit(growth, data, likelihood="negative-binomial")
    assert table["success"].all() and (table["dispersion"] > 0).all()

    def nll(m, y, log_alpha):
        alpha = np.exp(log_alpha)
        return -stats.nbinom.logpmf(y, 1 / alpha, 1 / (1 + alpha * m)).sum()

    for u in range(5):
        ref = reference(growth, _observed(data, u), nll, [np.log(0.1)])
        assert table["nll"][u] == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("loss", ["soft_l1", "huber", "cauchy"])
def test_robust_losses_reach_scipys_optimum(growth, loss):
    def draw(rng, m):
        y = m + rng.normal(0, 10, m.shape)
        y[3] += 400  # an outlier
        return y

    data = panel(growth, draw, seed=4)
    table = fit(growth, data, loss=loss, f_scale=20.0)
    assert table["success"].all() and table["nll"].isna().all()  # not a likelihood
    for u in range(5):
        y = _observed(data, u)
        # a robust loss is not convex: SciPy from x0 and from three other points, its best
        ref = min((optimize.least_squares(
            lambda z, y=y: simulate(growth, z[0], z[1]) - y, start, loss=loss, f_scale=20.0,
            bounds=([0.01, 10], [5, 1e5]), xtol=1e-14, ftol=1e-14, gtol=1e-14)
            for start in ([0.45, 600], [0.3, 400], [0.6, 700], [0.9, 500])),
            key=lambda solution: solution.cost)
        # SciPy's cost is half the sum of f² ρ(r²/f²); sdfit's objective is that sum
        assert table["objective"][u] == pytest.approx(2 * ref.cost, rel=1e-6)
        np.testing.assert_allclose(table.loc[u, PARAMS], ref.x, rtol=1e-4)
