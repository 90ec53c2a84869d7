"""Per-unit intervals worth trusting, batched: profile likelihood and bootstrap.

**Profile.**  For unit u, parameter j and a rung v of a ladder around the estimate x̂_uj,
the other parameters are refitted with x_j held at v; every unit × parameter × rung is a
row of one batched solve (the held parameter is taken out of the row, so the solver sees
P - 1 free ones).  The profile statistic is Bates & Watts' profile t,

    τ(v) = sign(v - x̂) sqrt(S(v) - S(x̂)) / s,

with S the sum of squared residuals and s² = S(x̂) / (n - P) for gaussian residuals of
unknown variance (the likelihood ratio with σ² profiled out, calibrated by F(1, n - P): the
interval is exactly the t interval for a model linear in its parameters), s = 1 for
likelihood residuals (the likelihood-ratio interval, χ²₁).  An end is where |τ| reaches
t_{n-P} or z at the level; it is interpolated linearly in τ between rungs (exact where τ is
linear in v), then refined by one more batched solve there.  The ladder is spaced by the
Gauss–Newton standard error and extended outwards where the profile has not crossed yet; an
end beyond the parameter's bound is the bound, one beyond the last rung is infinite.

**Bootstrap.**  Each unit's data are redrawn around its fit and refitted; every unit ×
replicate is a row of one batched solve.  For data ``y* = m(x̂) + e*`` a replicate's
residuals are ``r*(x) = sqrt(w)(m(x) - y*) = r(x) - r(x̂) - e*``: the original residual
function minus a per-row constant.  ``parametric``: e* ~ N(0, s²) in each observed slot;
``residual``: e* drawn with replacement from the unit's own residuals, centred and
inflated by sqrt(n / (n - P)).  Intervals are percentiles of the refitted values.  For
likelihood (deviance) residuals this treats them as standard normal, an approximation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import SpecError
from .base import ResidualFunction, Solver
from .lm import LevenbergMarquardt
from .pooled import linearise

KINDS = ("parametric", "residual")


@dataclass(frozen=True)
class Intervals:
    """Per-unit intervals (arrays over U units × P parameters).

    ``method`` names how they were made (``"profile"``, ``"bootstrap-parametric"``,
    ``"bootstrap-residual"``); ``stderr`` is the bootstrap SD, or for the profile the
    Gauss–Newton standard error that spaced its ladder; ``failed`` counts the rungs or
    replicates whose solve failed (left out); ``samples`` (U, B, P) are the bootstrap
    estimates.  An end is NaN where the unit has no residual degrees of freedom (gaussian)
    or no successful solve.
    """

    lower: np.ndarray
    upper: np.ndarray
    method: str
    level: float
    stderr: np.ndarray
    failed: np.ndarray
    samples: np.ndarray | None = None


def profile_intervals(fun: ResidualFunction, x_hat, lower, upper, *, n_obs,
                      scale: str = "estimate", level: float = 0.95, rungs: int = 4,
                      extend: int = 3, refine: int = 1, solver: Solver | None = None,
                      chunk_rows: int = 16384) -> Intervals:
    """Profile-likelihood intervals of every parameter of every unit.

    Parameters
    ----------
    fun
        Residuals (n, M) of rows ``x`` (n, P) of units ``units`` (n,).
    x_hat
        (U, P) the estimates (each unit's least-squares optimum).
    lower, upper
        Bounds, (P,) or (U, P).
    n_obs
        (U,) observations of each unit (the residual degrees of freedom are n - P).
    scale
        ``"estimate"`` (gaussian residuals, σ² unknown) or ``"fixed"`` (likelihood
        residuals).
    rungs
        Rungs per side, spaced evenly up to twice the Gauss–Newton half-width.
    extend
        Rounds of rungs further out (doubling the reach each round) where the profile has
        not crossed.
    refine
        Batched solves at the interpolated ends, each followed by a new interpolation.
    chunk_rows
        Rows per batched solve (bounds memory; the rows are independent).
    """
    x_hat = np.asarray(x_hat, float)
    u, p = x_hat.shape
    lower, upper = _bounds(lower, upper, u, p)
    r, jac = linearise(fun, x_hat, upper, np.arange(u))
    crit, s = _calibration(r, n_obs, p, scale, level)
    base = np.einsum("um,um->u", r, r)
    cov = _pinv(np.einsum("umk,uml->ukl", jac, jac))
    se = s[:, None] * np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    se = np.where(np.isfinite(se) & (se > 0), se, 1e-2 * np.maximum(np.abs(x_hat), 1.0))
    profile = _Profile(fun, x_hat, lower, upper, base, s, solver or LevenbergMarquardt(),
                       chunk_rows)
    # both sides at once: arrays (2, U, P), side 0 below the estimate, side 1 above it
    side = np.array([-1.0, 1.0])[:, None, None]
    bound = np.stack([lower, upper])
    c = crit[None, :, None]
    below = (np.stack([x_hat, x_hat]), np.zeros((2, u, p)))  # last rung inside the interval
    above = (np.full((2, u, p), np.nan), np.full((2, u, p), np.nan))  # first one outside
    ends, failed = np.full((2, u, p), np.nan), np.zeros((u, p), dtype=np.int64)
    open_ = np.broadcast_to(np.isfinite(c), (2, u, p)).copy()
    for round_ in range(extend + 1):
        reach = np.arange(1, rungs + 1) / rungs * 2.0  # multiples of the half-width
        if round_:
            reach = 2.0**round_ * (1 + np.arange(1, rungs + 1) / rungs)
        v = np.clip(x_hat[..., None] + (side * c * se)[..., None] * reach,
                    lower[..., None], upper[..., None])  # (2, U, P, R)
        tau = np.full(v.shape, np.nan)
        todo = np.argwhere(open_)
        rows = tuple(todo.T)
        tau[rows], bad = profile.tau(v[rows], todo[:, 1:])
        np.add.at(failed, rows[1:], bad)
        found = _bracket(v, tau, below, above, c, open_)
        at_bound = open_ & ~found & (below[0] == bound)
        ends[at_bound] = bound[at_bound]
        open_ &= ~found & ~at_bound
        if not open_.any():
            break
    ends[open_] = np.broadcast_to(side * np.inf, ends.shape)[open_]
    crossed = np.isfinite(above[0])
    ends[crossed] = _interpolate(below, above, c)[crossed]
    for _ in range(refine):
        ends = profile.refine(ends, crossed, below, above, c)
    return Intervals(ends[0], ends[1], "profile", level, se, failed)


class _Profile:
    """Batched refits with one parameter held, row by row."""

    def __init__(self, fun, x_hat, lower, upper, base, s, solver, chunk_rows):
        self.fun, self.x_hat, self.lower, self.upper = fun, x_hat, lower, upper
        self.base, self.s, self.solver, self.chunk_rows = base, s, solver, chunk_rows

    def tau(self, values: np.ndarray, where: np.ndarray):
        """τ at rungs ``values`` (n, R) of (unit, parameter) pairs ``where`` (n, 2), and the
        number of failed refits per pair."""
        n, rungs = values.shape
        unit = np.repeat(where[:, 0], rungs)
        held = np.repeat(where[:, 1], rungs)
        sse, ok = self.held_sse(unit, held, values.ravel())
        with np.errstate(invalid="ignore"):
            tau = np.sqrt(np.maximum(sse - self.base[unit], 0.0)) / self.s[unit]
        tau = np.where(ok, tau, np.nan).reshape(n, rungs)
        return tau, (~ok).reshape(n, rungs).sum(axis=1)

    def held_sse(self, unit, held, value):
        """Least sum of squares of each row with parameter ``held`` fixed at ``value``."""
        p = self.x_hat.shape[1]
        sse, ok = np.full(len(unit), np.nan), np.zeros(len(unit), bool)
        if p == 1:  # nothing left to refit
            r = self.fun(value[:, None], unit)
            sse = np.einsum("ij,ij->i", r, r)
            return sse, np.isfinite(sse)
        others = np.array([[k for k in range(p) if k != j] for j in range(p)])
        for start in range(0, len(unit), self.chunk_rows):
            block = slice(start, start + self.chunk_rows)
            u, j, v = unit[block], held[block], value[block]
            free = others[j]

            def reduced(x, rows, u=u, j=j, v=v, free=free):
                full = np.empty((len(rows), p))
                full[np.arange(len(rows))[:, None], free[rows]] = x
                full[np.arange(len(rows)), j[rows]] = v[rows]
                return self.fun(full, u[rows])

            take = (u[:, None], free)
            with np.errstate(all="ignore"):  # a row that diverges fails with a status
                sol = self.solver.solve(reduced, self.x_hat[take], self.lower[take],
                                        self.upper[take])
            sse[block], ok[block] = sol.sse, sol.success & np.isfinite(sol.sse)
        return sse, ok

    def refine(self, ends, crossed, below, above, c):
        """One refit at each interpolated end (``crossed``), which then replaces the side of
        the bracket it falls on, and a new interpolation (arrays (2, U, P))."""
        where = np.argwhere(crossed)
        if not len(where):
            return ends
        rows = tuple(where.T)
        tau = self.tau(ends[rows][:, None], where[:, 1:])[0][:, 0]
        ok = np.isfinite(tau)
        inside = ok & (tau < np.broadcast_to(c, ends.shape)[rows])
        for bracket, use in ((below, inside), (above, ok & ~inside)):
            picked = tuple(axis[use] for axis in rows)
            bracket[0][picked] = ends[picked]
            bracket[1][picked] = tau[use]
        return np.where(crossed, _interpolate(below, above, c), ends)


def _bracket(v, tau, below, above, c, open_) -> np.ndarray:
    """Walk the rungs (last axis of ``v``) outwards: ``below`` keeps the last rung with τ
    under the critical value ``c``, ``above`` gets the first one at or over it (failed
    rungs are skipped).  Returns where a crossing was found."""
    found = np.zeros(open_.shape, bool)
    for k in range(v.shape[-1]):
        ok = open_ & ~found & np.isfinite(tau[..., k])
        cross = ok & (tau[..., k] >= c)
        above[0][cross], above[1][cross] = v[..., k][cross], tau[..., k][cross]
        inside = ok & ~cross
        below[0][inside], below[1][inside] = v[..., k][inside], tau[..., k][inside]
        found |= cross
    return found


def _interpolate(below, above, c) -> np.ndarray:
    """The end where τ, linear between the two sides of the bracket, reaches ``c``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = (c - below[1]) / (above[1] - below[1])
    return below[0] + np.clip(weight, 0.0, 1.0) * (above[0] - below[0])


def bootstrap_intervals(fun: ResidualFunction, x_hat, lower, upper, *, n_obs,
                        scale: str = "estimate", kind: str = "parametric",
                        replicates: int = 200, seed: int = 0, level: float = 0.95,
                        sigma2=None, solver: Solver | None = None,
                        chunk_rows: int = 16384) -> Intervals:
    """Percentile bootstrap intervals of every parameter of every unit.

    Parameters
    ----------
    fun, x_hat, lower, upper, n_obs, scale, level, solver, chunk_rows
        As for :func:`profile_intervals`; the first ``n_obs[u]`` residual slots of unit u
        are its observations (the others are left as they are).
    kind
        ``"parametric"`` or ``"residual"``.
    replicates
        Replicates per unit (B); U·B rows are solved, ``chunk_rows`` at a time.
    seed
        Seed of the draws (the same seed gives the same intervals).
    sigma2
        Residual variance of the parametric draws, a number or (U,); default s² = S(x̂) /
        (n - P) per unit (gaussian) or 1 (likelihood residuals).
    """
    if kind not in KINDS:
        raise SpecError(f"The bootstrap kind must be one of {KINDS}; got {kind!r}.")
    x_hat = np.asarray(x_hat, float)
    u, p = x_hat.shape
    lower, upper = _bounds(lower, upper, u, p)
    solver = solver or LevenbergMarquardt()
    n_obs = np.asarray(n_obs)
    r_hat = fun(x_hat, np.arange(u))
    m = r_hat.shape[1]
    observed = np.arange(m) < n_obs[:, None]
    dof = n_obs - p
    rng = np.random.default_rng(seed)
    if kind == "parametric":
        if sigma2 is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma2 = (np.where(dof > 0, np.einsum("um,um->u", r_hat, r_hat) / dof, np.nan)
                          if scale == "estimate" else np.ones(u))
        sd = np.sqrt(np.broadcast_to(np.asarray(sigma2, float), (u,)))
        noise = rng.standard_normal((u, replicates, m)) * sd[:, None, None]
    else:
        # the unit's residuals as data minus fit, centred, inflated for the fitted parameters
        e = np.where(observed, -r_hat, 0.0)
        centre = e.sum(axis=1, keepdims=True) / np.maximum(n_obs, 1)[:, None]
        e = np.where(observed, e - centre, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            e *= np.where(dof > 0, np.sqrt(n_obs / dof), np.nan)[:, None]
        pick = (rng.random((u, replicates, m))
                * np.maximum(n_obs, 1)[:, None, None]).astype(np.int64)
        noise = np.take_along_axis(e[:, None, :], pick, axis=2)
    shift = np.where(observed[:, None, :], r_hat[:, None, :] + noise, 0.0)
    shift = shift.reshape(u * replicates, m)
    unit = np.repeat(np.arange(u), replicates)
    samples = np.full((u * replicates, p), np.nan)
    for start in range(0, len(unit), chunk_rows):
        block = slice(start, start + chunk_rows)
        owner, offset = unit[block], shift[block]

        def replicate(x, rows, owner=owner, offset=offset):
            return fun(x, owner[rows]) - offset[rows]

        usable = np.isfinite(offset).all(axis=1)
        with np.errstate(all="ignore"):  # a replicate that diverges fails with a status
            sol = solver.solve(replicate, x_hat[owner], lower[owner], upper[owner])
        samples[block] = np.where((sol.success & usable)[:, None], sol.x, np.nan)
    samples = samples.reshape(u, replicates, p)
    failed = np.isnan(samples).all(axis=2).sum(axis=1)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # a unit without a successful replicate gets NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(samples, [alpha, 1 - alpha], axis=1)
        spread = np.nanstd(samples, axis=1, ddof=1)
    return Intervals(low, high, f"bootstrap-{kind}", level, spread,
                     np.repeat(failed[:, None], p, axis=1), samples)


def _calibration(r, n_obs, p, scale, level):
    """The critical |τ| of each unit and its residual scale s, from its residuals ``r`` at
    the estimate."""
    from scipy import stats

    if scale not in ("estimate", "fixed"):
        raise SpecError(f"The scale must be 'estimate' or 'fixed'; got {scale!r}.")
    u = len(r)
    if scale == "fixed":
        return np.full(u, stats.norm.ppf((1 + level) / 2)), np.ones(u)
    dof = np.asarray(n_obs, float) - p
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(np.einsum("um,um->u", r, r) / dof)
        crit = np.where(dof > 0, stats.t.ppf((1 + level) / 2, np.maximum(dof, 1)), np.nan)
    return crit, np.where(dof > 0, s, np.nan)


def _bounds(lower, upper, u, p):
    return (np.broadcast_to(np.asarray(lower, float), (u, p)),
            np.broadcast_to(np.asarray(upper, float), (u, p)))


def _pinv(a):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a, hermitian=True)
