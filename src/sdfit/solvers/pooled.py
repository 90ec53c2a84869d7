"""Partial pooling: a nonlinear mixed-effects fit of all units at once.

Each unit's pooled parameters are drawn from a population, normal on the parameter's own
scale or on a log or logit scale, with a mean that may be a linear function of unit
covariates (see :mod:`sdfit.solvers.mixed` for the likelihood).  The fit alternates, as
Lindstrom & Bates (1990) do for nlme:

1. **Per-unit step** — every unit's conditional mode given the current population: ONE
   batched Levenberg–Marquardt solve over all units, warm-started, whose residuals are
   the unit's own followed by the prior rows ``σ L⁻¹(φ_Q - μ_u)`` (``Ω = L Lᵀ``; the
   ridge penalty generalised to a full covariance and a per-unit mean).
2. **Population step** — the model linearised at those modes (the solver's final
   Jacobians) is a linear mixed model, fitted to convergence by SQUAREM-accelerated ECM
   from per-unit sufficient statistics, without running the model.

For a model linear in its parameters this is exact maximum likelihood after one round;
otherwise it converges to the first-order conditional estimate (FOCE: the Laplace
approximation with the Gauss–Newton Hessian, each unit's Jacobian taken at its mode).
With sparse data per unit the Laplace approximation biases the population (the simulation
study in ``benchmarks/pooling.py`` measures it); ``method="importance"`` then refits the
population by importance sampling (:mod:`sdfit.solvers.importance`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..exceptions import DataError, SpecError
from .base import EPS, ResidualFunction, Solver, Status
from .importance import draw
from .lm import LevenbergMarquardt
from .mixed import Linearisation, Linearised, MixedModel, Population
from .transforms import Transforms

SCALES = ("estimate", "fixed")
METHODS = ("foce", "importance")
#: Rounds of importance sampling, each re-centred at the modes under the last population
#: (the estimate is exact whatever the proposal; re-centring only lowers its variance).
IMPORTANCE_ROUNDS = 1


@dataclass(frozen=True)
class PooledSolution:
    """Outcome of :func:`fit_pooled`.

    Per unit (arrays over the U units; NaN for a unit left out because its residuals are not
    finite at the start): ``x`` the shrunken estimates (conditional modes) on the model's
    scale; ``lower``/``upper`` their intervals at ``level`` and ``stderr`` their posterior SD
    on the transformed scale (normal approximation there, mapped back); ``shrinkage`` of each
    pooled parameter, ``V_jj / Ω_jj`` with ``V`` the unit's posterior covariance (0: its own
    data alone decide it, 1: the population alone; for a linear model it is exactly the
    weight of the population mean in the estimate); ``residuals`` at ``x``; ``ess`` the
    effective number of importance draws (``method="importance"``, else NaN); ``status`` of
    the last per-unit solve; ``nfev`` model evaluations spent on the unit.

    Population (on the transformed scale of each pooled parameter, in the order of
    ``pooled``): ``coef`` (Q, 1 + C) the mean's intercept then covariate coefficients (0
    where a covariate is left out), ``mean`` (U, Q) each unit's population mean, ``omega``
    (Q, Q) the covariance, ``sigma2`` the residual variance (1 for likelihood residuals),
    each with standard errors (``*_se``, from the observed information); ``eta_shrinkage``
    (Q,) the population summary used by NONMEM, ``1 - SD(mode - mean) / sqrt(Ω_jj)``;
    ``objective`` -2 log-likelihood (Laplace/FOCE, or its importance-sampling estimate; up
    to a constant for likelihood residuals); ``method``; ``iterations`` rounds of per-unit
    and population steps; ``converged`` and ``message``.
    """

    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stderr: np.ndarray
    shrinkage: np.ndarray
    residuals: np.ndarray
    ess: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    pooled: np.ndarray
    transforms: tuple[str, ...]
    coef: np.ndarray
    coef_se: np.ndarray
    mean: np.ndarray
    omega: np.ndarray
    omega_se: np.ndarray
    sigma2: float
    sigma2_se: float
    eta_shrinkage: np.ndarray
    objective: float
    level: float
    method: str
    iterations: int
    converged: bool
    message: str

    @property
    def sd(self) -> np.ndarray:
        """Population SD of each pooled parameter (transformed scale)."""
        return np.sqrt(np.diag(self.omega))

    @property
    def sd_se(self) -> np.ndarray:
        """Standard error of :attr:`sd` (delta method)."""
        return np.diag(self.omega_se) / (2 * self.sd)

    def population_table(self, names=None, covariate_names=None):
        """The population as a table: one row per estimate (mean or intercept, covariate
        coefficients, SD, covariances, residual variance) with its standard error and the
        scale it is on."""
        import pandas as pd

        pooled = np.flatnonzero(self.pooled)
        names = list(names) if names is not None else [f"x{j}" for j in range(len(
            self.pooled))]
        n_cov = self.coef.shape[1] - 1
        covariate_names = list(covariate_names if n_cov else [])
        if len(covariate_names) != n_cov:
            covariate_names = [f"covariate {a}" for a in range(1, n_cov + 1)]
        terms = ["mean" if n_cov == 0 else "intercept", *covariate_names]
        rows = []
        for i, j in enumerate(pooled):
            scale = self.transforms[j]
            for a, term in enumerate(terms):
                if np.isfinite(self.coef_se[i, a]) or a == 0:
                    rows.append((names[j], term, scale, self.coef[i, a], self.coef_se[i, a]))
            rows.append((names[j], "sd", scale, self.sd[i], self.sd_se[i]))
            for k in range(i):
                rows.append((names[j], f"cov with {names[pooled[k]]}", scale,
                             self.omega[i, k], self.omega_se[i, k]))
        rows.append(("residual", "sigma2", "none", self.sigma2, self.sigma2_se))
        table = pd.DataFrame(rows, columns=["parameter", "term", "scale", "estimate", "stderr"])
        table.attrs.update(objective=self.objective, converged=self.converged,
                           iterations=self.iterations)
        return table


def fit_pooled(fun: ResidualFunction, x0, lower, upper, *, n_obs, pooled, transform=None,
               covariates=None, covariate_mask=None, scale: str = "estimate",
               method: str = "foce", samples: int = 400, seed: int = 0,
               solver: Solver | None = None, level: float = 0.95, max_iterations: int = 30,
               tol: float = 1e-4, names=None) -> PooledSolution:
    """Fit every unit with its pooled parameters drawn from an estimated population.

    Parameters
    ----------
    fun
        Residuals (n, M) for parameter rows ``x`` (n, P) of units ``units`` (n,); the first
        ``n_obs[u]`` slots of unit ``u`` are its observations, the others exactly 0.
    x0
        Starting point, (P,) or (U, P); also the population mean's start.
    lower, upper
        Bounds on the model's scale, (P,) or (U, P).
    n_obs
        (U,) observations of each unit.
    pooled
        (P,) bool: parameters drawn from the population; the others are each unit's own.
    transform
        Per parameter ``"none"``, ``"log"`` or ``"logit"``: the scale on which the
        population is normal (default ``"none"`` for all).
    covariates
        (U, C) unit covariates (numbers; code categories as indicator columns without a
        reference level), or None: the mean of each pooled parameter is an intercept plus
        a linear function of them.
    covariate_mask
        (Q, C) bool: which covariates enter which pooled parameter's mean (default all).
    scale
        ``"estimate"``: gaussian residuals ``sqrt(w)(model - data)`` with unknown variance
        σ²; ``"fixed"``: likelihood residuals whose squares sum to -2 log-likelihood.
    method
        ``"foce"``: the population fitted to the units linearised at their modes
        (first-order conditional estimation, the Laplace approximation); fast, and exact
        for a model linear in its pooled parameters.  ``"importance"``: then refined by
        importance sampling of each unit's posterior (``samples`` draws per unit, from
        ``seed``; :mod:`sdfit.solvers.importance`), which removes the Laplace
        approximation's bias when the data per unit are sparse, for about ``samples`` more
        model evaluations per unit.
    solver
        The per-unit solver (default :class:`LevenbergMarquardt`).
    level
        Coverage of the per-unit intervals.
    max_iterations, tol
        Rounds of per-unit and population steps, and the change of the population below
        which they stop: of any unit's mean in population SDs, of Ω relative to its scale,
        of σ² relatively (:meth:`MixedModel.distance`).  The default, 1e-4, is well above
        the noise of the per-unit solves and far below the population's standard errors.
    names
        Parameter names, for messages.
    """
    n_obs = np.asarray(n_obs, dtype=float)
    units = len(n_obs)
    x0 = np.array(np.broadcast_to(np.asarray(x0, float), (units, np.shape(x0)[-1])))
    p = x0.shape[1]
    names = list(names) if names is not None else [f"parameter {j}" for j in range(p)]
    pooled = np.asarray(pooled, bool)
    if pooled.shape != (p,) or not pooled.any():
        raise SpecError(f"Pooling needs at least one pooled parameter among the {p}; got "
                        f"{pooled.tolist()}.")
    for what, value, choices in (("scale", scale, SCALES), ("method", method, METHODS)):
        if value not in choices:
            raise SpecError(f"The {what} of a pooled fit must be one of {choices}; got "
                            f"{value!r}.")
    if not 0 < level < 1:
        raise SpecError(f"The interval level must lie between 0 and 1; got {level}.")
    if max_iterations < 1:
        raise SpecError(f"A pooled fit needs max_iterations >= 1; got {max_iterations}.")
    kinds = Transforms(tuple(transform or ["none"] * p), names)
    kinds.check(x0)
    lower, upper = kinds.forward_bounds(np.broadcast_to(np.asarray(lower, float), (units, p)),
                                        np.broadcast_to(np.asarray(upper, float), (units, p)))
    design, mask = _design(covariates, covariate_mask, units, int(pooled.sum()))
    run = _Run(fun, kinds, solver or LevenbergMarquardt(), n_obs, pooled)
    lin = run.start(kinds.forward(x0), lower, upper, design, mask, scale == "estimate")
    model = run.model
    # the population step need only be as precise as the next round can use: a thousandth
    # of the last change (at most 1e-4), then to 1e-8 at the end
    change = 0.1
    pop, _, _, _ = model.fit(lin, lin.start(lin.point[:, pooled].mean(axis=0)), 1e-4)
    converged, rounds = False, 0
    while not converged and rounds < max_iterations:
        # the modes need be no more precise than the population they are conditioned on
        lin = run.unit_step(pop, lin, min(0.1 * change**2, 1e-2))
        new, _, _, _ = model.fit(lin, pop, min(max(1e-3 * change, 1e-10), 1e-4))
        change, pop, rounds = model.distance(pop, new), new, rounds + 1
        converged = change < tol
    pop, _, steps, settled = model.fit(lin, pop, 1e-8)
    message = "converged" if converged else (
        f"the population changed by more than tol = {tol:g} (relative) in the last of "
        f"{rounds} rounds")
    if not settled:
        converged = False
        message = (f"the population step did not settle in {steps} ECM steps: a variance or "
                   "correlation is probably at its boundary (the units do not differ in some "
                   "parameter or combination), where standard errors mean little; consider "
                   "not pooling it")
    likelihood = lin
    if method == "importance":
        for round_ in range(IMPORTANCE_ROUNDS):
            likelihood = draw(run.residuals, lin, pop, run.active, run.lower, run.upper,
                              samples, seed + round_)
            run.nfev[run.active] += likelihood.sse.shape[1]
            # Monte Carlo error dwarfs a tighter tolerance
            pop, _, _, _ = model.fit(likelihood, pop, 1e-6)
            lin = run.unit_step(pop, lin)  # the modes under the new population
    return run.solution(lin, likelihood, pop, level, method, rounds, converged, message)


class _Run:
    """State of one pooled fit: the units with finite residuals at the start (``active``),
    the model evaluations spent on each unit, the last per-unit status."""

    def __init__(self, fun, kinds, solver, n_obs, pooled):
        self.fun, self.kinds, self.solver, self.n_obs = fun, kinds, solver, n_obs
        self.pooled = pooled
        self.nfev = np.zeros(len(n_obs), dtype=np.int64)

    def residuals(self, phi: np.ndarray, units: np.ndarray) -> np.ndarray:
        """The units' residuals for rows on the transformed scale."""
        return self.fun(self.kinds.inverse(phi), units)

    def start(self, phi0, lower, upper, design, mask, estimate_scale) -> Linearised:
        """Linearise every unit at the start; leave out those whose residuals are not
        finite there."""
        units = len(phi0)
        r0, jac0 = linearise(self.residuals, phi0, upper, np.arange(units),
                             getattr(self.solver, "diff_step", EPS**0.5))
        _check_padding(r0, self.n_obs)
        self.nfev += 1 + phi0.shape[1]
        self.active = np.flatnonzero(np.isfinite(r0).all(axis=1)
                                     & np.isfinite(jac0).all(axis=(1, 2)))
        if not self.active.size:
            raise DataError("No unit has finite residuals at the starting point; pooling "
                            "needs some.")
        self.lower, self.upper = lower[self.active], upper[self.active]
        self.slots = r0.shape[1]
        self.status = np.full(units, Status.NOT_FINITE)
        self.model = MixedModel(self.pooled, design[self.active], mask, estimate_scale)
        a = self.active
        return Linearised(self.model, Linearisation.at(phi0[a], r0[a], jac0[a], self.n_obs[a]))

    def unit_step(self, pop: Population, lin: Linearised, precision: float = 0.0) -> Linearised:
        """Each unit's conditional mode given ``pop``: one batched solve over the active
        units, whose residuals are followed by the prior rows ``σ L⁻¹(φ_Q - μ_u)`` (their
        squares add ``σ² (φ_Q - μ_u)ᵀ Ω⁻¹ (φ_Q - μ_u)`` to the unit's sum), started from
        the modes the last linearisation ``lin`` predicts and stopped at the solver's
        tolerances or ``precision`` if looser; linearised at the modes by the solver's
        final Jacobians."""
        start = np.clip(lin.point + lin.step(pop), self.lower, self.upper)
        mean = self.model.means(pop.coef)
        root = np.sqrt(pop.sigma2) * np.linalg.inv(np.linalg.cholesky(pop.omega))

        def augmented(phi, rows):
            prior = (phi[:, self.pooled] - mean[rows]) @ root.T
            return np.concatenate([self.residuals(phi, self.active[rows]), prior], axis=1)

        solver = self.solver
        if precision > 0 and {"ftol", "xtol", "gtol"} <= set(vars(solver)):
            solver = dataclasses.replace(solver, **{k: max(getattr(solver, k), precision)
                                                    for k in ("ftol", "xtol", "gtol")})
        sol = solver.solve(augmented, start, self.lower, self.upper)
        x, r, jac, status, nfev = sol.x, sol.residuals, sol.jacobian, sol.status, sol.nfev
        retry = np.flatnonzero(status == Status.NOT_FINITE)
        if retry.size:  # the predicted start left the model's domain: start from the last mode
            again = solver.solve(lambda phi, rows: augmented(phi, retry[rows]),
                                 lin.point[retry], self.lower[retry], self.upper[retry])
            x, r, jac, status, nfev = (np.array(a) for a in (x, r, jac, status, nfev))
            x[retry], r[retry], jac[retry] = again.x, again.residuals, again.jacobian
            status[retry], nfev[retry] = again.status, nfev[retry] + again.nfev
        self.nfev[self.active] += nfev
        self.status[self.active] = status
        m = self.slots
        new = Linearisation.at(x, r[:, :m], jac[:, :m], self.n_obs[self.active])
        return Linearised(self.model, new)

    def solution(self, lin: Linearised, likelihood, pop: Population, level, method, rounds,
                 converged, message) -> PooledSolution:
        """Per-unit estimates, intervals and shrinkage at the final population (the last
        modes moved by one Gauss–Newton step to it: exact for a linear model), and the
        objective and standard errors of the population under ``likelihood``."""
        from scipy.special import ndtri

        model, a, q = self.model, self.active, np.flatnonzero(self.pooled)
        units, p = len(self.n_obs), len(self.pooled)
        phi = np.clip(lin.point + lin.step(pop), self.lower, self.upper)
        r = self.residuals(phi, a)
        self.nfev[a] += 1
        outside = ~np.isfinite(r).all(axis=1)  # the step left the model's domain: the mode
        if outside.any():
            phi[outside] = lin.point[outside]
            r[outside] = self.residuals(phi[outside], a[outside])
        sd = np.sqrt(np.maximum(np.diagonal(lin.covariance(pop), axis1=1, axis2=2), 0.0))
        half = ndtri((1 + level) / 2) * sd
        values = {"x": phi, "stderr": sd,
                  "lower": np.clip(phi - half, self.lower, self.upper),
                  "upper": np.clip(phi + half, self.lower, self.upper)}
        per_unit = {}
        for name, value in values.items():
            per_unit[name] = np.full((units, p), np.nan)
            per_unit[name][a] = value if name == "stderr" else self.kinds.inverse(value)
        per_unit["shrinkage"] = np.full((units, p), np.nan)
        # in [0, 1] but for rounding: the posterior variance never exceeds the prior's
        per_unit["shrinkage"][a[:, None], q] = np.clip(sd[:, q] ** 2 / np.diag(pop.omega),
                                                       0.0, 1.0)
        per_unit["residuals"] = np.full((units, r.shape[1]), np.nan)
        per_unit["residuals"][a] = r
        per_unit["mean"] = np.full((units, len(q)), np.nan)
        per_unit["mean"][a] = mean = model.means(pop.coef)
        per_unit["ess"] = np.full(units, np.nan)
        if method == "importance":
            per_unit["ess"][a] = likelihood.ess(pop)
        covariance = model.covariance(likelihood, pop)
        se = np.sqrt(np.where(np.diag(covariance) >= 0, np.diag(covariance), np.nan))
        k = int(model.mask.sum())
        coef_se = np.full(model.mask.shape, np.nan)
        coef_se[model.mask] = se[:k]
        omega_se = np.zeros((len(q), len(q)))
        omega_se[np.tril_indices(len(q))] = se[k:k + len(q) * (len(q) + 1) // 2]
        eta = phi[:, q] - mean
        return PooledSolution(
            **per_unit, status=self.status, nfev=self.nfev, pooled=self.pooled,
            transforms=self.kinds.kinds, coef=pop.coef, coef_se=coef_se, omega=pop.omega,
            omega_se=omega_se + np.tril(omega_se, -1).T, sigma2=pop.sigma2,
            sigma2_se=float(se[-1]) if model.estimate_scale else 0.0,
            eta_shrinkage=1 - eta.std(axis=0) / np.sqrt(np.diag(pop.omega)),
            objective=likelihood.posterior(pop).objective, level=level, method=method,
            iterations=rounds, converged=converged, message=message)


def linearise(fun: ResidualFunction, x: np.ndarray, upper: np.ndarray, units: np.ndarray,
              diff_step: float = EPS**0.5) -> tuple[np.ndarray, np.ndarray]:
    """Residuals (n, M) and forward-difference Jacobians (n, M, P) at rows ``x`` of
    ``units``, all in one batched call (a step goes backwards where it would cross
    ``upper``)."""
    n, p = x.shape
    h = diff_step * np.maximum(np.abs(x), 1.0)
    h = np.where(x + h > upper, -h, h)
    xs = np.repeat(x[:, None, :], p + 1, axis=1)  # row 0 the point, row j+1 moves x_j
    xs[:, 1 + np.arange(p), np.arange(p)] += h
    h = xs[:, 1 + np.arange(p), np.arange(p)] - x
    rs = fun(xs.reshape(n * (p + 1), p), np.repeat(units, p + 1)).reshape(n, p + 1, -1)
    with np.errstate(invalid="ignore"):
        jac = ((rs[:, 1:] - rs[:, :1]) / h[:, :, None]).transpose(0, 2, 1)
    return rs[:, 0], jac


def _check_padding(r: np.ndarray, n_obs: np.ndarray) -> None:
    """The slots beyond a unit's observations must be exactly 0 (the padding convention)."""
    padding = np.arange(r.shape[1]) >= n_obs[:, None]
    bad = padding & (r != 0) & np.isfinite(r)
    if bad.any():
        u = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"Unit {u} has {int(n_obs[u])} observations but a nonzero residual "
                         "in a slot after them: padding slots must be exactly 0 and come last.")


def _design(covariates, mask, units: int, q: int):
    """Design (U, 1 + C) with an intercept first, and which columns enter each mean."""
    if covariates is None:
        return np.ones((units, 1)), np.ones((q, 1), bool)
    z = np.asarray(covariates, float).reshape(units, -1)
    if not np.isfinite(z).all():
        u, a = np.argwhere(~np.isfinite(z))[0]
        raise DataError(f"Covariate {a} of unit {u} is {z[u, a]}: covariates must be finite "
                        "numbers.")
    mask = np.ones((q, z.shape[1]), bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != (q, z.shape[1]):
        raise SpecError(f"The covariate mask must have shape {(q, z.shape[1])} (pooled "
                        f"parameters × covariates); got {mask.shape}.")
    return np.column_stack([np.ones(units), z]), np.column_stack([np.ones(q, bool), mask])
