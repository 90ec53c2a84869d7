"""Levenberg–Marquardt on the joint problem of all units when some parameters are shared.

The unknowns are the shared values ``s`` (S of them) and every unit's own
parameters ``l_i`` (L each).  Unit i's residuals depend on ``s`` and ``l_i``
only, so its Jacobian splits into ``A_i`` (per-unit columns) and ``B_i``
(shared columns), and the damped normal equations have arrow structure::

    [ H_1          C_1 ] [δl_1]     [g_1]      H_i = A_iᵀA_i + μ D_i,  C_i = A_iᵀB_i
    [      ...     ... ] [ ...] = - [...]      g_i = A_iᵀ r_i
    [ C_1ᵀ ...  M      ] [δs  ]     [g_s]      M = Σ B_iᵀB_i + μ D_s,  g_s = Σ B_iᵀ r_i

Eliminating the per-unit blocks leaves an S × S system (the Schur complement
``M - Σ C_iᵀ H_i⁻¹ C_i``); then each ``δl_i`` follows from its own L × L
solve.  Every block is solved batched over units, so the cost grows linearly
with the number of units and there is no dense (N·L + S)² matrix.  One damping
and one convergence test serve the whole problem, since there is one objective.

Runs in process only: the units are coupled at every iteration, so the chunked
backends do not apply.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import SpecError
from .base import EPS, WORKING, ResidualFunction, Solution, Solver, Status
from .lm import _diag


def solve_shared(fun: ResidualFunction, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 shared: np.ndarray, settings: Solver) -> Solution:
    """Minimise ``Σ_u sum(fun(x_u, u)**2)`` with the ``shared`` columns of ``x`` equal in
    every row.  Units whose residuals are not finite at ``x0`` are left out (status
    NOT_FINITE); the others share one status.

    Parameters
    ----------
    fun
        Residuals for parameter rows ``x`` (n, P) of units ``units`` (n,).
    x0
        Starting points (N, P); the shared columns are taken from the first row.
    lower, upper
        Bounds, shape (P,).
    shared
        Boolean mask (P,) of the shared parameters.
    settings
        Tolerances, evaluation budget and difference step (as the batched solver's).
    """
    if not settings.joint:
        raise SpecError(f"Shared parameters are fitted jointly by sdfit's Levenberg–Marquardt "
                        f"solver; {type(settings).__name__} cannot solve the joint problem. "
                        "Give LevenbergMarquardt settings instead.")
    x = np.array(x0, dtype=float, ndmin=2)
    n, p = x.shape
    shared = np.asarray(shared, bool)
    lower = np.broadcast_to(np.asarray(lower, float), (p,))
    upper = np.broadcast_to(np.asarray(upper, float), (p,))
    x[:, shared] = x[0, shared]
    x = np.clip(x, lower, upper)
    nfev = np.ones(n, dtype=np.int64)
    njev = np.zeros(n, dtype=np.int64)
    r = fun(x, np.arange(n))
    status = np.where(np.isfinite(r).all(axis=1), WORKING, Status.NOT_FINITE)
    jac = np.full((n, r.shape[1], p), np.nan)
    work = np.flatnonzero(status == WORKING)
    if work.size:
        joint = _Joint(fun, settings, lower, upper, shared, work, p)
        x[work], r[work], jac[work], code = joint.solve(x[work], r[work])
        status[work] = code
        x[:, shared] = x[work[0], shared]  # failed units show the shared values too
        nfev[work] += joint.nfev
        njev[work] += joint.njev
    sse = np.einsum("ij,ij->i", r, r)
    return Solution(x, r, jac, sse, status, nfev, njev)


class _Joint:
    """State of one joint solve over the units ``work`` (all finite at the start)."""

    def __init__(self, fun, settings, lower, upper, shared, work, p):
        self.fun, self.settings, self.work = fun, settings, work
        self.lower, self.upper, self.shared = lower, upper, shared
        self.max_nfev = settings.max_nfev or 100 * (p + 1)
        self.nfev = self.njev = 0

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        self.nfev += 1
        return self.fun(x, self.work)

    def jacobian(self, x: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Forward differences of every unit's residuals, all columns in one batched call
        (a unit's residuals depend on its own row only, shared columns included)."""
        n, p = x.shape
        h = self.settings.diff_step * np.maximum(np.abs(x), 1.0)
        h = np.where(x + h > self.upper, -h, h)
        xs = np.repeat(x[:, None, :], p, axis=1)
        xs[:, np.arange(p), np.arange(p)] += h
        h = xs[:, np.arange(p), np.arange(p)] - x
        rs = self.fun(xs.reshape(n * p, p), np.repeat(self.work, p)).reshape(n, p, -1)
        self.nfev += p
        self.njev += 1
        return ((rs - r[:, None, :]) / h[:, :, None]).transpose(0, 2, 1)

    def solve(self, x: np.ndarray, r: np.ndarray):
        s, sh = self.settings, self.shared
        f = float(np.sum(r * r))
        jac = self.jacobian(x, r)
        d_local = np.einsum("nrl,nrl->nl", jac[:, :, ~sh], jac[:, :, ~sh])
        d_shared = np.einsum("nrs,nrs->s", jac[:, :, sh], jac[:, :, sh])
        mu, nu = 1e-3, 2.0
        while True:
            A, B = jac[:, :, ~sh], jac[:, :, sh]
            g_l, g_s = np.einsum("nrl,nr->nl", A, r), np.einsum("nrs,nr->s", B, r)
            xl, xs = x[:, ~sh], x[0, sh]
            free_l = _free(xl, g_l, self.lower[~sh], self.upper[~sh])
            free_s = _free(xs, g_s, self.lower[sh], self.upper[sh])
            if f == 0 or _max_cosine(A, B, g_l, g_s, free_l, free_s, f) <= s.gtol:
                return x, r, jac, Status.GTOL
            dl, ds = _damped(d_local), _damped(d_shared[None])[0]
            step_l, step_s = _schur_step(A, B, g_l, g_s, mu * dl, mu * ds, free_l, free_s)
            trial = x.copy()
            trial[:, ~sh] = np.clip(xl + step_l, self.lower[~sh], self.upper[~sh])
            trial[:, sh] = np.clip(xs + step_s, self.lower[sh], self.upper[sh])
            step = trial - x
            r_new = self.evaluate(trial)
            f_new = float(np.sum(r_new * r_new))
            f_new = f_new if np.isfinite(f_new) else np.inf
            linear = r + np.einsum("nrp,np->nr", jac, step)
            predicted = f - float(np.sum(linear * linear))
            actual = f - f_new
            rho = actual / predicted if predicted > 0 else -np.inf
            scale = np.sqrt(np.concatenate([dl.ravel(), ds]))
            moved = np.concatenate([step[:, ~sh].ravel(), step[0, sh]])
            where = np.concatenate([xl.ravel(), xs])
            done_x = (np.linalg.norm(scale * moved)
                      <= s.xtol * (s.xtol + np.linalg.norm(scale * where)))
            accept = rho > 1e-4
            done_f = accept and abs(actual) <= s.ftol * f and predicted <= s.ftol * f \
                and rho <= 2
            if accept:
                mu *= max(1 / 10, 1 - (2 * rho - 1) ** 3)
                nu = 2.0
                x, r, f = trial, r_new, f_new
            else:
                mu *= nu
                nu *= 2.0
            if done_f:
                return x, r, jac, Status.FTOL
            if done_x:
                return x, r, jac, Status.XTOL
            if self.nfev >= self.max_nfev:
                return x, r, jac, Status.MAX_NFEV
            if accept:
                jac = self.jacobian(x, r)
                d_local = np.maximum(d_local, np.einsum("nrl,nrl->nl", jac[:, :, ~sh],
                                                        jac[:, :, ~sh]))
                d_shared = np.maximum(d_shared, np.einsum("nrs,nrs->s", jac[:, :, sh],
                                                          jac[:, :, sh]))


def _schur_step(A, B, g_l, g_s, damp_l, damp_s, free_l, free_s):
    """Solve the damped arrow system by eliminating the per-unit blocks.  Parameters held
    at a bound (``free`` False) get identity rows and a zero step."""
    both_l = free_l[:, :, None] & free_l[:, None, :]
    H = np.einsum("nrk,nrl->nkl", A, A) + _diag(damp_l)
    H = np.where(both_l, H, 0.0) + _diag((~free_l).astype(float))
    C = np.where(free_l[:, :, None] & free_s[None, None, :],
                 np.einsum("nrl,nrs->nls", A, B), 0.0)
    g_l, g_s = np.where(free_l, g_l, 0.0), np.where(free_s, g_s, 0.0)
    solved = np.linalg.solve(H, np.concatenate([g_l[..., None], C], axis=2))
    h_g, h_c = solved[:, :, 0], solved[:, :, 1:]  # H⁻¹g, H⁻¹C
    M = np.einsum("nrs,nrt->st", B, B) + np.diag(damp_s)
    schur = M - np.einsum("nls,nlt->st", C, h_c)
    rhs = g_s - np.einsum("nls,nl->s", C, h_g)
    both_s = free_s[:, None] & free_s[None, :]
    schur = np.where(both_s, schur, 0.0) + np.diag((~free_s).astype(float))
    step_s = -np.linalg.solve(schur, np.where(free_s, rhs, 0.0))
    step_l = -(h_g + np.einsum("nls,s->nl", h_c, step_s))
    return np.where(free_l, step_l, 0.0), step_s


def _free(x, g, lower, upper):
    """False where a parameter sits at a bound and the gradient pushes it out of the box."""
    return ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))


def _damped(diag: np.ndarray) -> np.ndarray:
    """Moré's scaling with a floor, as the batched solver uses it."""
    d = np.maximum(diag, np.max(diag, axis=-1, keepdims=True) * EPS)
    return np.where(d > 0, d, 1.0)


def _max_cosine(A, B, g_l, g_s, free_l, free_s, f) -> float:
    """Largest cosine between the residual vector and a free column of the joint Jacobian."""
    norm_l = np.sqrt(np.einsum("nrl,nrl->nl", A, A))
    norm_s = np.sqrt(np.einsum("nrs,nrs->s", B, B))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_l = np.where(free_l & (norm_l > 0), np.abs(g_l) / (norm_l * np.sqrt(f)), 0.0)
        cos_s = np.where(free_s & (norm_s > 0), np.abs(g_s) / (norm_s * np.sqrt(f)), 0.0)
    return float(np.nan_to_num(max(cos_l.max(initial=0), cos_s.max(initial=0)), nan=0.0))
