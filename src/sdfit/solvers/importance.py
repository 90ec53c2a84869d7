"""Importance sampling of each unit's posterior: the population step of partial pooling
without the Laplace approximation (maximum likelihood up to Monte Carlo error).

Each unit's pooled parameters are drawn S times from a multivariate t proposal centred at
its conditional mode with its Laplace covariance (antithetic pairs, independent between
units), and the model runs once on all U·S rows.  With the draws fixed, a unit's
marginal likelihood under *any* population is an importance-weighted average in closed
form, since a draw's likelihood depends on the population only through σ² and the draw's
sum of squared residuals, stored once.  So the population is fitted by the same ECM as under
the linearisation (:class:`~sdfit.solvers.mixed.MixedModel`), the posterior moments being
weighted moments of the draws, without running the model again.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

from .mixed import LOG_2PI, Linearised, MixedModel, Population, Posterior

#: Degrees of freedom of the t proposal: tails heavier than the posterior's, so that the
#: importance weights stay bounded.
NU = 5


class Sampled:
    """Each unit's posterior as importance-weighted draws.

    Parameters
    ----------
    model
        The population's structure.
    draws
        (U, S, Q) draws of the pooled parameters (transformed scale).
    sse
        (U, S) sum of squared residuals of each draw (inf where the model fails).
    log_q
        (U, S) log-density of each draw under its proposal.
    n_obs
        (U,) observations per unit.
    """

    def __init__(self, model: MixedModel, draws, sse, log_q, n_obs):
        self.model, self.draws, self.sse, self.log_q = model, draws, sse, log_q
        self.n_obs = np.asarray(n_obs, float)

    def log_weights(self, pop: Population) -> np.ndarray:
        """log of p(y | draw) p(draw | population) / q(draw), (U, S)."""
        q = self.draws.shape[2]
        chol = np.linalg.cholesky(pop.omega)
        z = (self.draws - self.model.means(pop.coef)[:, None, :]) @ np.linalg.inv(chol).T
        log_prior = -0.5 * (q * LOG_2PI + 2 * np.log(np.diag(chol)).sum()
                            + (z * z).sum(axis=2))
        log_lik = -0.5 * self.sse / pop.sigma2
        if self.model.estimate_scale:
            log_lik = log_lik - 0.5 * self.n_obs[:, None] * (LOG_2PI + np.log(pop.sigma2))
        return log_lik + log_prior - self.log_q

    def posterior(self, pop: Population) -> Posterior:
        log_w = self.log_weights(pop)
        log_marginal = logsumexp(log_w, axis=1) - np.log(log_w.shape[1])
        w = np.exp(log_w - log_marginal[:, None]) / log_w.shape[1]
        mean = (w[:, None, :] @ self.draws)[:, 0]
        dev = self.draws - mean[:, None, :]
        cov = np.swapaxes(dev * w[:, :, None], 1, 2) @ dev
        sse = np.einsum("us,us->u", w, np.where(w > 0, self.sse, 0.0))
        return Posterior(mean, cov, sse, lambda: -2 * log_marginal.sum())

    def mean_weights(self, pop: Population) -> np.ndarray:
        return self.posterior(pop).cov

    def ess(self, pop: Population) -> np.ndarray:
        """Effective number of draws of each unit (Kish): S when the proposal is the
        posterior, 1 when one draw carries all the weight."""
        log_w = self.log_weights(pop)
        w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
        return 1 / np.einsum("us,us->u", w, w)


def draw(fun, lin: Linearised, pop: Population, units: np.ndarray, lower, upper,
         samples: int, seed: int, chunk_rows: int = 65536) -> Sampled:
    """Draw ``samples`` pooled parameter vectors per unit around the modes of ``lin`` under
    ``pop`` and run the model on them.

    Parameters
    ----------
    fun
        Residuals of rows ``phi`` (n, P) (transformed scale) of units ``units`` (n,).
    lin
        The linearisation of the units: modes and Laplace covariances come from it.
    units
        The units' indices as ``fun`` knows them, (U,).
    lower, upper
        (U, P) bounds on the transformed scale: a draw outside them has no weight.
    """
    model = lin.model
    q = model.pooled
    modes = lin.point + lin.step(pop)
    chol = np.linalg.cholesky(lin.posterior(pop).cov)  # (U, Q, Q)
    rng = np.random.default_rng(seed)
    n, half = len(modes), max(samples // 2, 1)
    # independent draws for every unit: errors shared by all units would add up in the sum
    # of their log-likelihoods instead of averaging out
    t = rng.standard_normal((n, half, len(q)))
    t /= np.sqrt(rng.chisquare(NU, (n, half, 1)) / NU)
    t = np.concatenate([t, -t], axis=1)  # antithetic pairs
    draws = modes[:, None, q] + np.einsum("uqr,usr->usq", chol, t)
    log_q = (gammaln((NU + len(q)) / 2) - gammaln(NU / 2) - len(q) / 2 * np.log(NU * np.pi)
             - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)[:, None]
             - (NU + len(q)) / 2 * np.log1p(np.einsum("usq,usq->us", t, t) / NU))
    s = draws.shape[1]
    rows = np.repeat(modes[:, None, :], s, axis=1)
    rows[:, :, q] = draws
    rows = rows.reshape(n * s, -1)
    inside = ((rows >= np.repeat(lower, s, axis=0)) & (rows <= np.repeat(upper, s, axis=0)))
    sse = np.full(n * s, np.inf)
    owner = np.repeat(units, s)
    for start in range(0, n * s, chunk_rows):
        block = slice(start, start + chunk_rows)
        r = fun(rows[block], owner[block])
        sse[block] = np.einsum("ij,ij->i", r, r)
    sse = np.where(inside.all(axis=1) & np.isfinite(sse), sse, np.inf).reshape(n, s)
    return Sampled(model, draws, sse, log_q, lin.n_obs)
