"""Profile-likelihood and bootstrap intervals: exact on a linear model, nominal coverage of
planted values on a nonlinear one, edge cases (bounds, unidentified parameters)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from planted import decay_units, linear_units
from sdfit.exceptions import SpecError
from sdfit.solvers import LevenbergMarquardt
from sdfit.solvers.uncertainty import bootstrap_intervals, profile_intervals


def _fitted_line(seed=1, units=100, low=3, high=8):
    """The linear stock observed 3-8 times per unit, each unit fitted alone, and its
    least-squares estimates, standard errors and t intervals computed by hand."""
    obs, _, _ = linear_units(seed, units=units, low=low, high=high)
    x = LevenbergMarquardt().solve(obs, np.broadcast_to([5.0, 1.0], (units, 2)), -np.inf,
                                   np.inf).x
    se, half = np.zeros((units, 2)), np.zeros((units, 2))
    for u in range(units):
        n = obs.n_obs[u]
        design = np.column_stack([np.ones(n), obs.times[u, :n]])
        beta, sse, *_ = np.linalg.lstsq(design, obs.values[u, :n], rcond=None)
        np.testing.assert_allclose(x[u], beta, rtol=1e-6)
        se[u] = np.sqrt(sse[0] / (n - 2) * np.diag(np.linalg.inv(design.T @ design)))
        half[u] = stats.t.ppf(0.975, n - 2) * se[u]
    return obs, x, se, half


def test_profile_interval_of_a_linear_model_is_the_t_interval():
    obs, x, se, half = _fitted_line()
    prof = profile_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs)
    assert prof.method == "profile" and prof.failed.sum() == 0
    np.testing.assert_allclose(prof.lower, x - half, rtol=0, atol=1e-8 * half.max())
    np.testing.assert_allclose(prof.upper, x + half, rtol=0, atol=1e-8 * half.max())
    np.testing.assert_allclose(prof.stderr, se, rtol=1e-6)


def test_profile_with_likelihood_residuals_is_the_chi_square_interval():
    """Residuals scaled by a known σ are likelihood residuals: the interval is
    x ± z σ se with z from χ²₁, whatever the unit's own residual spread."""
    obs, x, se, _ = _fitted_line(units=30)
    sigma = 1.5

    def scaled(x, units):
        return obs(x, units) / sigma

    prof = profile_intervals(scaled, x, -np.inf, np.inf, n_obs=obs.n_obs, scale="fixed")
    n, p = obs.n_obs, 2
    sse = np.einsum("um,um->u", obs(x, np.arange(30)), obs(x, np.arange(30)))
    known = se * sigma / np.sqrt(sse / (n - p))[:, None]  # se with σ known
    np.testing.assert_allclose(prof.upper - x, stats.norm.ppf(0.975) * known, rtol=1e-7)


def test_profile_stops_at_a_bound_and_is_infinite_where_nothing_is_learnt():
    obs, x, _, half = _fitted_line(units=20, low=4)  # residual dof left with 3 parameters
    upper = np.array([np.inf, x[:, 1].max() + 0.1 * half[:, 1].min()])
    prof = profile_intervals(obs, x, -np.inf, upper, n_obs=obs.n_obs)
    assert (prof.upper[:, 1] == upper[1]).any()
    assert (prof.upper[:, 1] <= upper[1]).all()

    def blind(x3, units):  # a third parameter the data never see
        return obs(x3[:, :2], units)

    x3 = np.column_stack([x, np.ones(20)])
    prof = profile_intervals(blind, x3, -np.inf, np.inf, n_obs=obs.n_obs)
    assert np.isinf(prof.lower[:, 2]).all() and np.isinf(prof.upper[:, 2]).all()
    assert np.isfinite(prof.lower[:, :2]).all()


@pytest.mark.parametrize("kind", ["parametric", "residual"])
def test_bootstrap_of_a_linear_model_has_its_analytic_standard_errors(kind):
    """The bootstrap variance of each estimate is s² (XᵀX)⁻¹ in expectation: the mean
    ratio over 100 units is 1 within Monte Carlo error."""
    obs, x, se, _ = _fitted_line(units=100, low=4)
    boot = bootstrap_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs, kind=kind,
                               replicates=200, seed=3)
    assert boot.method == f"bootstrap-{kind}" and boot.failed.sum() == 0
    assert boot.samples.shape == (100, 200, 2)
    ratio = (boot.stderr / se) ** 2
    error = ratio.std(axis=0) / np.sqrt(len(ratio))
    assert (np.abs(ratio.mean(axis=0) - 1) < 4 * error).all(), (ratio.mean(axis=0), error)
    assert ((boot.lower < x) & (x < boot.upper)).all()


def test_bootstrap_is_reproducible_and_independent_of_the_chunking():
    obs, x, _, _ = _fitted_line(units=12)
    first = bootstrap_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs, replicates=30,
                                seed=5)
    again = bootstrap_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs, replicates=30,
                                seed=5, chunk_rows=7)
    np.testing.assert_allclose(first.samples, again.samples, rtol=1e-6)
    other = bootstrap_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs, replicates=30,
                                seed=6)
    assert not np.allclose(first.samples, other.samples)


def test_units_without_residual_degrees_of_freedom_get_no_interval():
    obs, _, _ = linear_units(2, units=30, low=2, high=4)
    x = LevenbergMarquardt().solve(obs, np.broadcast_to([5.0, 1.0], (30, 2)), -np.inf,
                                   np.inf).x
    exact = obs.n_obs == 2
    for result in (profile_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs),
                   bootstrap_intervals(obs, x, -np.inf, np.inf, n_obs=obs.n_obs,
                                       replicates=20)):
        assert np.isnan(result.lower[exact]).all() and np.isfinite(result.lower[~exact]).all()


def test_unknown_bootstrap_kind_is_refused():
    with pytest.raises(SpecError, match="bootstrap kind"):
        bootstrap_intervals(None, np.zeros((1, 1)), 0, 1, n_obs=[3], kind="wild")


@pytest.mark.slow
def test_intervals_cover_planted_values_at_their_nominal_rate():
    """1,000 units of the nonlinear decay, 40 noisy observations each: profile and
    bootstrap (200 replicates) 95 % intervals cover the planted values 95 % ± 3 % of the
    time.  (With fewer observations percentile bootstrap intervals are too narrow by the
    ratio of t to normal quantiles; benchmarks/pooling.py prints both.)"""
    obs, truth = decay_units(5, units=1000, low=40, high=40)
    x = LevenbergMarquardt().solve(obs, np.broadcast_to([0.2, 80.0], truth.shape), [0, 0],
                                   np.inf).x
    results = [profile_intervals(obs, x, [0, 0], np.inf, n_obs=obs.n_obs)]
    for kind in ("parametric", "residual"):
        results.append(bootstrap_intervals(obs, x, [0, 0], np.inf, n_obs=obs.n_obs,
                                           kind=kind, replicates=200, seed=1))
    for result in results:
        coverage = ((result.lower <= truth) & (truth <= result.upper)).mean(axis=0)
        assert (np.abs(coverage - 0.95) <= 0.03).all(), (result.method, coverage)
