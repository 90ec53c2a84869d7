"""Maximum likelihood of a linear mixed-effects model from per-unit sufficient statistics:
the population step of partial pooling (:mod:`sdfit.solvers.pooled`).

Each unit's residuals are, exactly or after linearisation at a point ``φ̂_u``,

    r_u(φ) = r_u + J_u (φ - φ̂_u),    each real slot with variance σ² (or 1: likelihood residuals)

and its pooled parameters (the Q columns ``pooled`` of φ) are drawn from the population

    φ_u[pooled] ~ N(μ_u, Ω),    μ_u[q] = Σ_a z_u[a] B[q, a]  over the covariates a of q,

while its other parameters are its own (maximised over, not integrated).  Everything the
likelihood needs is in ``JᵀJ``, ``Jᵀr``, ``rᵀr`` and the number of observations of each
unit, so fitting the population never runs the model.

The objective is -2 log-likelihood (Gaussian constants included; up to a constant for
likelihood residuals), with each unit's pooled parameters integrated out exactly:

    Σ_u  n_u log(2π σ²) + min_φ [ |r_u(φ)|²/σ² + (φ_Q - μ_u)ᵀ Ω⁻¹ (φ_Q - μ_u) ]
         + log |I + Ω J_Qᵀ J_Q / σ²|.

It is minimised by ECM (the per-unit posterior, then generalised least squares for B,
then Ω and σ² in closed form), accelerated by SQUAREM (Varadhan & Roland 2008) in
coordinates where Ω stays positive definite (log-Cholesky) and σ² positive (log).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from ..exceptions import DataError

LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class Linearisation:
    """Per-unit quadratic model of the residuals around ``point`` (U, P)."""

    point: np.ndarray  # (U, P) φ̂
    gram: np.ndarray  # (U, P, P) JᵀJ
    grad: np.ndarray  # (U, P) Jᵀr
    sse: np.ndarray  # (U,) rᵀr
    n_obs: np.ndarray  # (U,)

    @classmethod
    def at(cls, point, residuals, jacobian, n_obs) -> Linearisation:
        return cls(point, np.einsum("umk,uml->ukl", jacobian, jacobian),
                   np.einsum("umk,um->uk", jacobian, residuals),
                   np.einsum("um,um->u", residuals, residuals), np.asarray(n_obs, float))


@dataclass(frozen=True)
class Population:
    """Mean coefficients ``coef`` (Q, A) (0 where a covariate is left out), covariance
    ``omega`` (Q, Q) and residual variance ``sigma2`` (1 for likelihood residuals)."""

    coef: np.ndarray
    omega: np.ndarray
    sigma2: float


@dataclass(frozen=True)
class Posterior:
    """What the population step needs of each unit's posterior given a population: the
    mean and covariance of its pooled parameters (its own parameters held at their
    optimum), the expected sum of squared residuals, and the objective (-2 log-likelihood
    of the population, computed when first asked for: most ECM steps never need it)."""

    mean: np.ndarray  # (U, Q)
    cov: np.ndarray  # (U, Q, Q)
    sse: np.ndarray  # (U,)
    total: Callable[[], float]

    @cached_property
    def objective(self) -> float:
        return float(self.total())


class MixedModel:
    """The structure of the population: which parameters are pooled, the design.

    Parameters
    ----------
    pooled
        (P,) bool.
    design
        (U, A) values of the covariates, an intercept column first.
    mask
        (Q, A) bool: which covariates enter the mean of each pooled parameter.
    estimate_scale
        Gaussian residuals with unknown variance σ² (True) or likelihood residuals (σ² = 1).

    The methods take a posterior source ``lik`` (:class:`Linearised`, or
    :class:`~sdfit.solvers.importance.Sampled`) with ``posterior(pop) -> Posterior``,
    ``mean_weights(pop)`` and ``n_obs``.
    """

    def __init__(self, pooled, design, mask, estimate_scale: bool):
        self.pooled = np.flatnonzero(pooled)
        self.design = np.asarray(design, float)
        self.mask = np.asarray(mask, bool)
        self.estimate_scale = estimate_scale
        # distinct design rows (a categorical covariate has few) and which unit has which
        self._rows, self._row_of = np.unique(self.design, axis=0, return_inverse=True)
        for use in np.unique(self.mask, axis=0):
            sub = self._rows[:, use]
            if np.linalg.matrix_rank(sub) < sub.shape[1]:
                q = int(np.flatnonzero((self.mask == use).all(axis=1))[0])
                raise DataError(f"The covariates of pooled parameter {q} are collinear (or "
                                f"constant) over the {len(self.design)} units: their "
                                "population mean cannot be estimated; drop one of them.")
        self._gram = self.design.T @ self.design
        self._ols = np.linalg.solve(self._gram, self.design.T) if self.mask.all() else None

    # -- the population in unconstrained coordinates, for SQUAREM ------------------------
    def encode(self, pop: Population) -> np.ndarray:
        chol = np.linalg.cholesky(pop.omega)
        chol[np.diag_indices_from(chol)] = np.log(np.diag(chol))
        tail = [np.log(pop.sigma2)] if self.estimate_scale else []
        return np.concatenate([pop.coef[self.mask], chol[np.tril_indices_from(chol)], tail])

    def decode(self, psi: np.ndarray) -> Population:
        q = len(self.pooled)
        k = int(self.mask.sum())
        coef = np.zeros(self.mask.shape)
        coef[self.mask] = psi[:k]
        chol = np.zeros((q, q))
        chol[np.tril_indices(q)] = psi[k:k + q * (q + 1) // 2]
        chol[np.diag_indices(q)] = np.exp(np.diag(chol))
        sigma2 = float(np.exp(psi[-1])) if self.estimate_scale else 1.0
        return Population(coef, chol @ chol.T, sigma2)

    def means(self, coef: np.ndarray) -> np.ndarray:
        """μ_u (U, Q)."""
        return self.design @ coef.T

    # -- ECM and its acceleration --------------------------------------------------------
    def update(self, lik, pop: Population, post: Posterior) -> Population:
        """One ECM step: GLS for the mean coefficients, then Ω and σ² in closed form."""
        coef = self.regress(post.mean, pop.omega)
        resid = post.mean - self.means(coef)
        omega = (resid.T @ resid + post.cov.sum(axis=0)) / len(resid)
        omega = (omega + omega.T) / 2
        sigma2 = 1.0
        if self.estimate_scale:
            sigma2 = max(post.sse.sum() / lik.n_obs.sum(), 1e-300)
        return Population(coef, omega, sigma2)

    def regress(self, m: np.ndarray, omega: np.ndarray) -> np.ndarray:
        """Generalised least squares of the means ``m`` (U, Q) on the design with
        covariance ``omega`` (ordinary least squares when every mean has every covariate)."""
        if self._ols is not None:
            return (self._ols @ m).T
        oi = np.linalg.inv(omega)
        normal = np.einsum("qr,ab->qarb", oi, self._gram)[self.mask][:, self.mask]
        rhs = (oi @ m.T @ self.design)[self.mask]
        coef = np.zeros(self.mask.shape)
        coef[self.mask] = np.linalg.solve(normal, rhs)
        return coef

    def fit(self, lik, start: Population, tol: float = 1e-10,
            max_steps: int = 1000) -> tuple[Population, Posterior, int, bool]:
        """Maximum likelihood from ``start`` by SQUAREM-accelerated ECM (scheme S3: two ECM
        steps, an extrapolation along them, one ECM step from there to stabilise it, kept
        when the objective has not risen since the two steps began, else the second
        step).  Returns the population, its posterior, the ECM steps taken and whether the
        population changed by less than ``tol`` (relative to its own scale, see
        :meth:`distance`) in the last step."""
        pop, post = start, lik.posterior(start)
        steps, step_max = 0, 1.0
        while steps < max_steps:
            pop1 = self.update(lik, pop, post)
            post1 = lik.posterior(pop1)
            steps += 1
            if self.distance(pop, pop1) < tol:
                return pop1, post1, steps, True
            pop2 = self.update(lik, pop1, post1)
            steps += 1
            converged = self.distance(pop1, pop2) < tol
            psi0, psi1, psi2 = (self.encode(p) for p in (pop, pop1, pop2))
            r, v = psi1 - psi0, psi2 - 2 * psi1 + psi0
            alpha = min(step_max, np.sqrt(r @ r / (v @ v))) if v @ v > 0 else 1.0
            kept = None
            if alpha > 1 and not converged:
                try:
                    jump = self.decode(psi0 + 2 * alpha * r + alpha**2 * v)
                    stable = self.update(lik, jump, lik.posterior(jump))
                    stable_post = lik.posterior(stable)
                    steps += 2
                    if stable_post.objective <= post.objective:
                        kept = stable, stable_post
                except (np.linalg.LinAlgError, FloatingPointError):
                    pass
                if kept is not None and alpha == step_max:
                    step_max *= 4
                elif kept is None:
                    step_max = max(1.0, step_max / 4)
            elif alpha <= 1:
                step_max *= 4
            pop, post = kept or (pop2, lik.posterior(pop2))
            if converged:
                return pop, post, steps, True
        return pop, post, steps, False

    def distance(self, a: Population, b: Population) -> float:
        """Largest change from ``a`` to ``b`` of a unit's mean in population SDs, of an
        element of Ω relative to its scale, and of σ² relatively."""
        sd = np.sqrt(np.diag(b.omega))
        mean = np.max(np.abs(self.means(a.coef) - self.means(b.coef)) / sd)
        cov = np.max(np.abs(a.omega - b.omega) / np.outer(sd, sd))
        return float(max(mean, cov, abs(a.sigma2 - b.sigma2) / b.sigma2))

    # -- standard errors -----------------------------------------------------------------
    def gradient(self, lik, pop: Population) -> np.ndarray:
        """Gradient of the objective in the natural coordinates (the coefficients, the lower
        triangle of Ω, σ² when estimated): by Fisher's identity, the expected gradient of
        the complete-data objective under each unit's posterior."""
        post = lik.posterior(pop)
        oi = np.linalg.inv(pop.omega)
        d = post.mean - self.means(pop.coef)
        g_coef = -2 * (oi @ d.T @ self.design)[self.mask]
        g_omega = len(d) * oi - oi @ (d.T @ d + post.cov.sum(axis=0)) @ oi
        g_omega = (2 * g_omega - np.diag(np.diag(g_omega)))[np.tril_indices_from(g_omega)]
        tail = []
        if self.estimate_scale:
            tail = [lik.n_obs.sum() / pop.sigma2 - post.sse.sum() / pop.sigma2**2]
        return np.concatenate([g_coef, g_omega, tail])

    def covariance(self, lik, pop: Population) -> np.ndarray:
        """Covariance of the population estimates in the natural coordinates (see
        :meth:`gradient`): twice the inverse Hessian of the objective, whose mean block is
        exact and whose other blocks are forward differences of the analytic gradient (a
        relative step of 1e-5: errors of about that size in the standard errors)."""
        q, k = len(self.pooled), int(self.mask.sum())
        rows, cols = np.tril_indices(q)
        sd = np.sqrt(np.diag(pop.omega))
        steps = [(i, j, 1e-5 * sd[i] * sd[j]) for i, j in zip(rows, cols, strict=True)]
        if self.estimate_scale:
            steps.append((None, None, 1e-5 * pop.sigma2))
        n = k + len(steps)
        hess = np.zeros((n, n))
        hess[:k, :k] = self._mean_hessian(lik.mean_weights(pop), pop)
        here = self.gradient(lik, pop)
        for c, (i, j, h) in enumerate(steps):
            omega, s2 = pop.omega.copy(), pop.sigma2
            if i is None:
                s2 += h
            else:
                omega[i, j] += h
                omega[j, i] = omega[i, j]
            hess[:, k + c] = (self.gradient(lik, Population(pop.coef, omega, s2)) - here) / h
        hess[k:, :k] = hess[:k, k:].T
        hess = (hess + hess.T) / 2
        try:
            return 2 * np.linalg.inv(hess)
        except np.linalg.LinAlgError:
            return np.full((n, n), np.nan)

    def _mean_hessian(self, v: np.ndarray, pop: Population) -> np.ndarray:
        """Exact Hessian of the objective in the mean coefficients,
        2 Σ_u X_uᵀ (Ω⁻¹ - Ω⁻¹ V_u Ω⁻¹) X_u with ``v`` the posterior covariances V_u of the
        pooled parameters; the weights summed over units of the same design row first,
        then accumulated over blocks of distinct rows to bound memory."""
        oi = np.linalg.inv(pop.omega)
        nq, na = self.mask.shape
        w = np.zeros((len(self._rows), nq * nq))
        np.add.at(w, self._row_of.ravel(), (oi - oi @ v @ oi).reshape(len(v), -1))
        total = np.zeros((nq * nq, na * na))
        for start in range(0, len(w), 512):
            z = self._rows[start:start + 512]
            zz = (z[:, :, None] * z[:, None, :]).reshape(len(z), -1)
            total += w[start:start + 512].T @ zz
        full = 2 * total.reshape(nq, nq, na, na).transpose(0, 2, 1, 3).reshape(nq * na, -1)
        flat = self.mask.ravel()
        return full[flat][:, flat]


class Linearised:
    """Each unit's posterior under its linearised residuals (exact for a linear model,
    first-order conditional estimation otherwise): :class:`Linearisation` ``lin`` of the
    units of ``model``.  When every parameter is pooled the per-unit arithmetic runs
    compiled (``mixed.c``) if a C compiler is at hand, unless ``compiled`` is False; the
    NumPy code is its reference."""

    def __init__(self, model: MixedModel, lin: Linearisation, compiled: bool = True):
        self.model, self.lin, self.n_obs = model, lin, lin.n_obs
        everything = len(model.pooled) == lin.gram.shape[1]
        self.compiled = _compiled() if compiled and everything else None

    @property
    def point(self) -> np.ndarray:
        """(U, P) where the units are linearised (their modes under the last population)."""
        return self.lin.point

    def posterior(self, pop: Population) -> Posterior:
        lin, q, s2 = self.lin, self.model.pooled, pop.sigma2
        oi = np.linalg.inv(pop.omega)
        if self.compiled is not None:
            delta, cov, rss, spread, logdet = self._compiled(pop, oi)
        else:
            g_qq = lin.gram[:, q[:, None], q]
            a = oi + g_qq / s2  # the posterior precision of the pooled parameters
            cov = np.linalg.inv(a)
            delta = self.step(pop, oi, cov)
            rss = np.maximum(lin.sse + np.einsum("uk,uk->u", 2 * lin.grad + (
                lin.gram @ delta[:, :, None])[:, :, 0], delta), 0.0)
            spread = np.einsum("uqr,urq->u", cov, g_qq)

            def logdet():
                return np.linalg.slogdet(a)[1]

        mean = lin.point[:, q] + delta[:, q]

        def total() -> float:
            d = mean - self.model.means(pop.coef)
            value = (rss.sum() / s2 + np.einsum("uq,qr,ur->", d, oi, d) + logdet().sum()
                     + len(rss) * np.linalg.slogdet(pop.omega)[1])
            if self.model.estimate_scale:
                value += self.n_obs.sum() * (LOG_2PI + np.log(s2))
            return value

        # E|r|² over the pooled parameters' posterior: the residual at the mode plus spread
        return Posterior(mean, cov, rss + spread, total)

    def _compiled(self, pop: Population, oi: np.ndarray):
        lin = self.lin
        n, q = lin.grad.shape
        e = np.ascontiguousarray(self.model.means(pop.coef) - lin.point)
        delta, rss, spread, logdet = (np.empty((n, q)), np.empty(n), np.empty(n),
                                      np.empty(n))
        cov = np.empty((n, q, q))
        inputs = [np.ascontiguousarray(a, dtype=float) for a in (lin.gram, lin.grad, lin.sse)]
        self.compiled(n, q, np.ascontiguousarray(oi).ctypes.data, pop.sigma2,
                      *(a.ctypes.data for a in (*inputs, e, delta, cov, rss, spread, logdet)))
        return delta, cov, rss, spread, lambda: logdet

    def step(self, pop: Population, oi=None, cov=None) -> np.ndarray:
        """Each unit's mode minus its linearisation point (U, P); ``cov``, the inverse
        posterior precision of the pooled parameters, solves it when all are pooled."""
        lin, q, s2 = self.lin, self.model.pooled, pop.sigma2
        oi = np.linalg.inv(pop.omega) if oi is None else oi
        rhs = -lin.grad / s2
        rhs[:, q] += (self.model.means(pop.coef) - lin.point[:, q]) @ oi
        if cov is not None and len(q) == rhs.shape[1]:
            return (cov @ rhs[:, :, None])[:, :, 0]
        lam = lin.gram / s2
        lam[:, q[:, None], q] += oi
        return _solve(lam, rhs)

    def covariance(self, pop: Population) -> np.ndarray:
        """Posterior covariance (U, P, P) of every parameter of each unit: the inverse of
        the penalised Gauss–Newton Hessian, the unit's own parameters included."""
        q = self.model.pooled
        lam = self.lin.gram / pop.sigma2
        lam[:, q[:, None], q] += np.linalg.inv(pop.omega)
        return _pinv(lam)

    def mean_weights(self, pop: Population) -> np.ndarray:
        """Covariance of the pooled parameters with the unit's own ones integrated too:
        how a unit's mode follows its population mean."""
        q = self.model.pooled
        return self.covariance(pop)[:, q[:, None], q]

    def start(self, center: np.ndarray) -> Population:
        """A population to start from: the mean at ``center`` (Q,), a prior about ten times
        wider than what a typical unit's data say, the residual variance at the point; then
        one ECM step."""
        lin, q = self.lin, self.model.pooled
        coef = np.zeros(self.model.mask.shape)
        coef[:, 0] = center
        sigma2 = 1.0
        if self.model.estimate_scale:
            sigma2 = max(lin.sse.sum() / max(lin.n_obs.sum(), 1.0), 1e-300)
        info = np.mean(lin.gram[:, q, q], axis=0) / sigma2
        omega = np.diag(np.where(info > 0, 100.0 / np.where(info > 0, info, 1.0), 1.0))
        pop = Population(coef, omega, sigma2)
        return self.model.update(self, pop, self.posterior(pop))


@cache
def _compiled():
    """The compiled per-unit posterior (``mixed.c``), or None (NumPy then)."""
    from .. import native

    library = native.library((Path(__file__).parent / "mixed.c").read_text())
    if library is None:
        return None
    function = library.mixed_posterior
    function.restype = None
    function.argtypes = ([ctypes.c_int64] * 2 + [ctypes.c_void_p, ctypes.c_double]
                         + [ctypes.c_void_p] * 9)
    return function


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched solve; a singular block (a unit's own parameter its data cannot see) gets the
    least-norm solution."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (_pinv(a) @ b[..., None])[..., 0]


def _pinv(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a, hermitian=True)
