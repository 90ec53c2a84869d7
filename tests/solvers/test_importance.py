"""Importance sampling of the units' posteriors against adaptive Gauss–Hermite quadrature,
a deterministic and (with enough nodes) exact marginal likelihood."""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from planted import decay_units
from sdfit.solvers.importance import Sampled
from sdfit.solvers.mixed import LOG_2PI, Linearisation, Linearised, MixedModel, Population
from sdfit.solvers.pooled import fit_pooled, linearise


def _quadrature(obs, x, pop: Population, nodes: int = 24) -> Sampled:
    """The units' marginal likelihood by a product Gauss–Hermite rule centred at ``x`` and
    scaled by twice the Laplace covariance: as importance weights, the rule's nodes are
    the draws and its weights the inverse proposal density."""
    units = len(x)
    model = MixedModel([True, True], np.ones((units, 1)), np.ones((2, 1), bool), True)

    def fun(phi, rows):
        return obs(np.exp(phi), rows)

    phi = np.log(x)
    r, jac = linearise(fun, phi, np.full_like(phi, np.inf), np.arange(units))
    lin = Linearised(model, Linearisation.at(phi, r, jac, obs.n_obs))
    chol = np.linalg.cholesky(2 * lin.posterior(pop).cov)
    z, w = hermegauss(nodes)
    grid = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    weight = np.outer(w, w).ravel() / w.sum() ** 2
    keep = weight > 1e-14 * weight.max()
    grid, weight = grid[keep], weight[keep]
    draws = phi[:, None, :] + np.einsum("uqr,sr->usq", chol, grid)
    log_normal = (-0.5 * (2 * LOG_2PI + (grid**2).sum(axis=1))[None, :]
                  - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)[:, None])
    rows = fun(draws.reshape(-1, 2), np.repeat(np.arange(units), len(grid)))
    sse = np.einsum("ij,ij->i", rows, rows).reshape(units, -1)
    return Sampled(model, draws, sse, log_normal - np.log(weight * len(grid))[None, :],
                   obs.n_obs)


def test_importance_sampling_reaches_the_quadrature_maximum_likelihood():
    """On sparse data (2-4 observations per unit) the Laplace approximation (FOCE) misses
    the maximum-likelihood population by a sizeable share of its standard errors;
    importance sampling lands on it within a small share of them."""
    obs, _ = decay_units(seed=0, units=300)
    common = dict(n_obs=obs.n_obs, pooled=[True, True], transform=["log", "log"])
    foce = fit_pooled(obs, [0.2, 80.0], [0, 0], np.inf, **common)
    sampled = fit_pooled(obs, [0.2, 80.0], [0, 0], np.inf, method="importance", **common)
    exact = _quadrature(obs, foce.x, Population(foce.coef, foce.omega, foce.sigma2))
    pop, _, _, converged = exact.model.fit(exact, Population(foce.coef, foce.omega,
                                                             foce.sigma2))
    assert converged
    se = np.concatenate([sampled.coef_se[:, 0], sampled.sd_se])

    def error(sol):  # in standard errors, for the means and the SDs
        estimate = np.concatenate([sol.coef[:, 0], sol.sd])
        return np.abs(estimate - np.concatenate([pop.coef[:, 0], np.sqrt(np.diag(
            pop.omega))])) / se

    assert error(sampled).max() < 0.15, error(sampled)
    assert error(foce).max() > 0.3, error(foce)  # what the refinement is for
    assert abs(sampled.objective - exact.posterior(pop).objective) < 2.0
    assert np.nanmin(sampled.ess) > 100  # of 400 draws: the proposal fits every unit
