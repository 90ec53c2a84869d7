"""Fit the units of one chunk (on a worker), or all units jointly when some parameters are
shared: starts, the dispersion of count data, the best start of each unit, and what the
tables need (fitted values, objective, likelihood).

Several starts are rows of the same batch: N starts of U units are U·N rows, unit-major, and
each unit keeps the row with the lowest objective.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from . import likelihoods
from .compiled_residuals import Residuals
from .objective import Objective
from .resolved import Resolved, UnitData
from .solvers import Solution, Solver, Status
from .solvers.base import Outcomes
from .solvers.joint import solve_shared

#: Two starts reached the same optimum when their objectives differ by less than this,
#: relative to the larger of the best objective and the data's own sum of squares × 1e-4.
AGREE_RTOL = 1e-6
#: Rounds of the alternation between the solver and the dispersion update (counts).
DISPERSION_ROUNDS = 50


@dataclass(frozen=True)
class Payload:
    """What every worker needs once, whatever chunk it fits."""

    resolved: Resolved
    solver: Solver


@dataclass(frozen=True)
class ChunkResult(Outcomes):
    """Per-unit outcome of one chunk (arrays over its U units), as saved in checkpoints."""

    x: np.ndarray  # (U, P) best parameters
    status: np.ndarray  # (U,) Status values
    nfev: np.ndarray  # (U,) model evaluations, every start and Jacobian column included
    njev: np.ndarray  # (U,)
    objective: np.ndarray  # (U,) sum of squared residuals of the data (penalties excluded)
    sse: np.ndarray  # (U,) weighted sum of squared errors (model - data)
    nll: np.ndarray  # (U,) negative log-likelihood (NaN for a robust loss)
    fitted: np.ndarray  # (U, M) the model at each observation slot
    jacobian: np.ndarray  # (U, M + R, P) of the residuals at the best point
    dispersion: np.ndarray  # (U, D): negative binomial α (D = 0 otherwise)
    starts_agree: np.ndarray  # (U,) starts within AGREE_RTOL of the best

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> ChunkResult:
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def __len__(self) -> int:
        return len(self.x)


def fit_chunk(payload: Payload, data: UnitData) -> ChunkResult:
    """Fit every unit of one chunk with the batched solver (runs on a worker)."""
    resolved = payload.resolved
    objective = Objective(resolved, data)
    starts = resolved.starts
    x0 = start_points(resolved, len(data))
    p = resolved.parameters

    def solve(fun, x_start):
        return payload.solver.solve(fun, x_start, p.lower, p.upper)

    solution, alpha = _solve(objective, solve, x0, np.repeat(np.arange(len(data)), starts))
    return _best(objective, solution, alpha, starts)


def fit_joint(payload: Payload, data: UnitData) -> ChunkResult:
    """Fit every unit at once in this process: shared parameters couple them."""
    resolved = payload.resolved
    objective = Objective(resolved, data)
    p = resolved.parameters

    def solve(fun, x_start):
        return solve_shared(fun, x_start, p.lower, p.upper, p.shared, payload.solver)

    solution, alpha = _solve(objective, solve, start_points(resolved, len(data)),
                             np.arange(len(data)))
    return _best(objective, solution, alpha, 1)


def start_points(resolved: Resolved, n_units: int) -> np.ndarray:
    """Starting rows (U·N, P), unit-major: x0 first, then N - 1 points of a Latin hypercube
    over the bounds (x0 ± scale where a bound is infinite), the same for every unit (drawn
    from ``seed``)."""
    p = resolved.parameters
    starts = resolved.starts
    x0 = np.broadcast_to(p.x0, (n_units, len(p.x0)))
    if starts == 1:
        return np.array(x0)
    lo = np.where(np.isfinite(p.lower), p.lower, p.x0 - p.scale)
    hi = np.where(np.isfinite(p.upper), p.upper, p.x0 + p.scale)
    rng = np.random.default_rng(resolved.seed)
    # Latin hypercube: one point in each of N - 1 strata per parameter, strata shuffled
    k = starts - 1
    strata = np.argsort(rng.random((k, len(p.x0))), axis=0)
    unit = (strata + rng.random((k, len(p.x0)))) / k
    others = np.clip(lo + unit * (hi - lo), p.lower, p.upper)
    block = np.concatenate([p.x0[None], others])  # (N, P)
    return np.tile(block, (n_units, 1))


def _solve(objective: Objective, solve, x0: np.ndarray, units: np.ndarray):
    """Solve for rows ``x0`` of ``units``; for the negative binomial, alternate with the
    dispersions until they settle.  Returns the solution and the dispersions (or None)."""
    obs = objective.resolved.observations
    if obs.likelihood != "negative-binomial":
        return solve(Residuals(objective, units), x0), None
    groups = len(obs.slots) if obs.dispersion == "variable" else 1
    alpha = np.full((len(x0), groups), 0.1)
    total, x = None, x0
    for _ in range(DISPERSION_ROUNDS):
        current = alpha if groups > 1 else alpha[:, 0]

        def fun(x, rows, a=current):
            return objective.residuals(x, units[rows], a[rows])

        solution = solve(fun, x)
        x = solution.x
        total = _add_counts(total, solution)
        model = objective.outputs(solution.x, units)
        codes, n_groups = objective.dispersion_groups(len(x0), units)
        data = objective.data
        new = likelihoods.update_dispersion(
            model, data.obs_value[units], objective.sqrt_w[units] ** 2, data.obs_mask[units],
            codes, n_groups).reshape(len(x0), groups)
        settled = np.max(np.abs(np.log(new) - np.log(alpha))) < 1e-9
        alpha = new
        if settled:
            break
    current = alpha if groups > 1 else alpha[:, 0]
    final = solve(lambda x, rows: objective.residuals(x, units[rows], current[rows]),
                  solution.x)
    return _add_counts(total, final), alpha


def _add_counts(total: Solution | None, solution: Solution) -> Solution:
    if total is None:
        return solution
    return Solution(solution.x, solution.residuals, solution.jacobian, solution.sse,
                    solution.status, total.nfev + solution.nfev, total.njev + solution.njev)


def _best(objective: Objective, solution: Solution, alpha, starts: int) -> ChunkResult:
    """Each unit's best start, and what the tables need at it."""
    resolved, data = objective.resolved, objective.data
    n = len(data)
    m = data.obs_mask.shape[1]
    r = solution.residuals
    total = np.einsum("ij,ij->i", r, r)  # with penalties: what the solver minimised
    total = np.where(np.isfinite(total) & (solution.status != Status.NOT_FINITE), total,
                     np.inf).reshape(n, starts)
    # a successful start beats a failed one that happens to be lower
    rank = np.where(solution.status.reshape(n, starts) > 0, total, total + np.inf)
    rank = np.where(np.isfinite(rank).any(axis=1, keepdims=True), rank, total)
    best = np.argmin(rank, axis=1)
    # one start: every row is its unit's best, taken as it is (no copy of the Jacobians;
    # np.ascontiguousarray below still lays out in rows what a solver gives otherwise)
    rows = slice(None) if starts == 1 else np.arange(n) * starts + best
    with np.errstate(over="ignore", invalid="ignore"):  # failed units are rows, not warnings
        weighted = objective.sqrt_w * data.obs_value
        scale = np.einsum("ij,ij->i", weighted, weighted)
        tol = AGREE_RTOL * np.maximum(np.min(total, axis=1), 1e-4 * scale) + 1e-300
        agree = (total - np.min(total, axis=1, keepdims=True) <= tol[:, None]).sum(axis=1)
    x = np.ascontiguousarray(solution.x[rows])
    units = np.arange(n)
    fitted = objective.outputs(x, units)
    obs = resolved.observations
    a = None if alpha is None else alpha[rows]
    data_r = np.ascontiguousarray(r[rows, :m])
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(data.obs_mask, objective.sqrt_w * (fitted - data.obs_value), 0.0)
        sse = np.einsum("ij,ij->i", error, error)
    nll = likelihoods.nll(obs.likelihood, obs.loss, data_r, fitted, data.obs_value,
                          objective.sqrt_w, data.obs_mask, objective.slot_alpha(
                              None if a is None else (a if a.shape[1] > 1 else a[:, 0]),
                              units))
    nfev = solution.nfev.reshape(n, starts).sum(axis=1)
    njev = solution.njev.reshape(n, starts).sum(axis=1)
    return ChunkResult(
        x=x, status=solution.status[rows], nfev=nfev, njev=njev,
        objective=np.einsum("ij,ij->i", data_r, data_r), sse=sse, nll=nll,
        fitted=np.where(data.obs_mask, fitted, np.nan),
        jacobian=np.ascontiguousarray(solution.jacobian[rows]),
        dispersion=np.empty((n, 0)) if a is None else a, starts_agree=agree)


def fit_pooled_units(payload: Payload, data: UnitData):
    """Fit every unit at once with its pooled parameters drawn from a population estimated
    with them (in this process: the population couples the units).  Returns the chunk
    result (the Jacobian of the data residuals alone, for the diagnostics) and the solver's
    pooled solution (posterior intervals, shrinkage, the population)."""
    from .solvers.pooled import fit_pooled

    resolved = payload.resolved
    objective = Objective(resolved, data)
    p, pooling = resolved.parameters, resolved.pooling

    def fun(x, units):
        return objective.data_residuals(objective.outputs(x, units), units)

    solution = fit_pooled(
        fun, p.x0, p.lower, p.upper, n_obs=data.n_obs, pooled=p.pooled,
        transform=list(p.transforms), covariates=data.covariates,
        covariate_mask=pooling.mask, scale=pooling.scale, method=pooling.method,
        samples=pooling.samples, seed=resolved.seed, solver=payload.solver, names=p.names)
    x = np.where(np.isfinite(solution.x), solution.x, p.x0)
    units = np.arange(len(data))
    residuals = fun(x, units)
    jacobian = _jacobian(fun, x, residuals)
    result = Solution(x, residuals, jacobian, np.einsum("ij,ij->i", residuals, residuals),
                      np.asarray(solution.status), np.asarray(solution.nfev) + x.shape[1],
                      np.ones(len(x), dtype=np.int64))
    return _best(objective, result, None, 1), solution


def _jacobian(fun, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Forward differences of ``fun`` at the rows ``x``, all columns in one batched call."""
    n, p = x.shape
    h = np.sqrt(np.finfo(float).eps) * np.maximum(np.abs(x), 1.0)
    xs = np.repeat(x[:, None, :], p, axis=1)
    xs[:, np.arange(p), np.arange(p)] += h
    rs = fun(xs.reshape(n * p, p), np.repeat(np.arange(n), p)).reshape(n, p, -1)
    return ((rs - r[:, None, :]) / h[:, :, None]).transpose(0, 2, 1)
