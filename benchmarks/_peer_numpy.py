"""The well-posed aging-chain fit (``us-counties``) as a skilled NumPy user writes it by hand.

Euler on a (units, 9) array of cohorts, with the exact derivatives of the 2010 counts with
respect to the eight fitted loss rates carried along as forward-mode tangents (units, 9, 8);
one batched Levenberg–Marquardt over the counties still working (Moré scaling, Nielsen's
damping, MINPACK's ftol/xtol/gtol tests at sdfit's tolerances).  One process, no Python
loop over counties.
"""

from __future__ import annotations

import numpy as np

DT, STEPS, DURATION = 0.125, 80, 10.0  # the model's TIME STEP, 2000 -> 2010, cohort length
FIXED_RATE, X0, TOL, MAX_NFEV = 0.05, 0.05, 1e-10, 900


def simulate(stocks: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cohorts in 2010 (n, 9) and their derivatives by the fitted rates (n, 9, 8), from the
    2000 cohorts (n, 9) and the rates of cohorts 2-9 (n, 8)."""
    n = len(stocks)
    rate = np.concatenate([np.full((n, 1), FIXED_RATE), rates], axis=1)
    ageing = np.full(9, DT / DURATION)
    ageing[8] = 0.0  # the oldest cohort ages out of the model
    keep = 1.0 - ageing - DT * rate  # what a cohort keeps of itself in one step
    x = stocks.copy()
    s = np.zeros((n, 9, 8))  # s[:, k, j] = d cohort k / d rate of cohort j + 2
    k, j = np.arange(1, 9), np.arange(8)
    for _ in range(STEPS):
        s_next = keep[:, :, None] * s
        s_next[:, 1:] += (DT / DURATION) * s[:, :-1]
        s_next[:, k, j] -= DT * x[:, 1:]
        x_next = keep * x
        x_next[:, 1:] += (DT / DURATION) * x[:, :-1]
        x, s = x_next, s_next
    return x, s


def fit(stocks_2000: np.ndarray, counts_2010: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loss rates of cohorts 2-9 (N, 8) and SSE (N,) that reproduce each county's 2010 counts
    of cohorts 2-9, starting from 0.05."""
    n = len(stocks_2000)
    target = counts_2010[:, 1:]
    x = np.full((n, 8), X0)
    model, jac = simulate(stocks_2000, x)
    r, J = model[:, 1:] - target, jac[:, 1:]
    f = np.einsum("ij,ij->i", r, r)
    diag = np.einsum("ijk,ijk->ik", J, J)
    mu, nu = np.full(n, 1e-3), np.full(n, 2.0)
    nfev = np.ones(n, dtype=int)
    work = np.arange(n)
    eye = np.eye(8)
    while work.size:
        xw, Jw, rw, fw = x[work], J[work], r[work], f[work]
        g = np.einsum("ijk,ij->ik", Jw, rw)
        norms = np.sqrt(np.einsum("ijk,ijk->ik", Jw, Jw))
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where(norms > 0, np.abs(g) / (norms * np.sqrt(fw)[:, None]), 0.0)
        done_g = (fw == 0) | (np.nan_to_num(cosine.max(axis=1)) <= TOL)
        d = np.maximum(diag[work], diag[work].max(axis=1, keepdims=True) * 1e-16)
        A = np.einsum("ijk,ijl->ikl", Jw, Jw) + mu[work, None, None] * d[:, None, :] * eye
        step = -np.linalg.solve(A, g[..., None])[..., 0]
        trial = xw + step
        model, jac = simulate(stocks_2000[work], trial)
        nfev[work] += 1
        r_new, J_new = model[:, 1:] - target[work], jac[:, 1:]
        f_new = np.einsum("ij,ij->i", r_new, r_new)
        f_new = np.where(np.isfinite(f_new), f_new, np.inf)
        predicted_r = rw + np.einsum("ijk,ik->ij", Jw, step)
        predicted = fw - np.einsum("ij,ij->i", predicted_r, predicted_r)
        actual = fw - f_new
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(predicted > 0, actual / predicted, -np.inf)
        accept = (rho > 1e-4) & ~done_g
        sd = np.sqrt(d)
        done_x = (np.linalg.norm(sd * step, axis=1)
                  <= TOL * (TOL + np.linalg.norm(sd * xw, axis=1)))
        done_f = accept & (np.abs(actual) <= TOL * fw) & (predicted <= TOL * fw) & (rho <= 2)
        good, bad = work[accept], work[~accept]
        mu[good] *= np.maximum(1 / 10, 1 - (2 * rho[accept] - 1) ** 3)
        nu[good] = 2.0
        mu[bad] *= nu[bad]
        nu[bad] *= 2.0
        x[good], r[good], f[good], J[good] = trial[accept], r_new[accept], f_new[accept], \
            J_new[accept]
        diag[good] = np.maximum(diag[good], np.einsum("ijk,ijk->ik", J_new[accept],
                                                      J_new[accept]))
        stop = done_g | done_f | done_x | (nfev[work] >= MAX_NFEV)
        work = work[~stop]
    return x, f
