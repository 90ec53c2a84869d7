"""The well-posed aging-chain fit (``us-counties``) as a skilled Numba user writes it by hand.

One compiled function fits one county: Euler on nine local cohorts with the exact
derivatives by the eight fitted loss rates carried along as forward-mode tangents (only the
cohorts a rate can reach), and Levenberg–Marquardt (Moré scaling, Nielsen's damping,
MINPACK's ftol/xtol/gtol tests at sdfit's tolerances) with a Cholesky solve of the 8 x 8
normal equations.  ``fit`` runs it over the counties in ``prange`` (one thread per core).
"""

from __future__ import annotations

import numba
import numpy as np

DT, STEPS, DURATION = 0.125, 80, 10.0
FIXED_RATE, X0, TOL, MAX_NFEV = 0.05, 0.05, 1e-10, 900
P = 8


@numba.njit(cache=True, fastmath=False)
def _simulate(stocks, rates, target, r, J):
    """Residuals r (8,) and Jacobian J (8, 8) of one county at ``rates``; returns the SSE."""
    a = DT / DURATION
    keep = np.empty(9)
    keep[0] = 1.0 - a - DT * FIXED_RATE
    for k in range(1, 9):
        keep[k] = 1.0 - (a if k < 8 else 0.0) - DT * rates[k - 1]
    x = stocks.copy()
    s = np.zeros((9, P))  # s[k, j] = d cohort k / d rate of cohort j + 2
    x_next = np.empty(9)
    for _ in range(STEPS):
        for j in range(P):  # rate j moves cohorts j + 1 and older
            for k in range(8, j + 1, -1):
                s[k, j] = keep[k] * s[k, j] + a * s[k - 1, j]
            s[j + 1, j] = keep[j + 1] * s[j + 1, j] - DT * x[j + 1]
        x_next[0] = keep[0] * x[0]
        for k in range(1, 9):
            x_next[k] = keep[k] * x[k] + a * x[k - 1]
        x[:] = x_next
    f = 0.0
    for i in range(P):
        r[i] = x[i + 1] - target[i]
        f += r[i] * r[i]
        for j in range(P):
            J[i, j] = s[i + 1, j]
    return f


@numba.njit(cache=True)
def _cholesky_solve(A, b, out):
    """Solve A out = -b for a symmetric positive definite A (overwritten by its factor)."""
    n = len(b)
    for j in range(n):
        v = A[j, j]
        for k in range(j):
            v -= A[j, k] * A[j, k]
        if not v > 0:
            return False
        A[j, j] = np.sqrt(v)
        for i in range(j + 1, n):
            v = A[i, j]
            for k in range(j):
                v -= A[i, k] * A[j, k]
            A[i, j] = v / A[j, j]
    for i in range(n):
        v = -b[i]
        for k in range(i):
            v -= A[i, k] * out[k]
        out[i] = v / A[i, i]
    for i in range(n - 1, -1, -1):
        v = out[i]
        for k in range(i + 1, n):
            v -= A[k, i] * out[k]
        out[i] = v / A[i, i]
    return True


@numba.njit(cache=True)
def _fit_one(stocks, target, x):
    """Fit one county from ``x`` (updated in place); returns its SSE."""
    r, J, r_new, J_new = np.empty(P), np.empty((P, P)), np.empty(P), np.empty((P, P))
    A, g, step, trial, d = np.empty((P, P)), np.empty(P), np.empty(P), np.empty(P), np.empty(P)
    f = _simulate(stocks, x, target, r, J)
    if not np.isfinite(f):
        return f
    for j in range(P):
        d[j] = 0.0
        for i in range(P):
            d[j] += J[i, j] * J[i, j]
    mu, nu, nfev = 1e-3, 2.0, 1
    while True:
        cosine, dmax = 0.0, 0.0
        for j in range(P):
            g[j], norm2 = 0.0, 0.0
            for i in range(P):
                g[j] += J[i, j] * r[i]
                norm2 += J[i, j] * J[i, j]
            if norm2 > 0:
                cosine = max(cosine, abs(g[j]) / (np.sqrt(norm2) * np.sqrt(f)))
            dmax = max(dmax, d[j])
        if f == 0 or cosine <= TOL:
            return f
        for j in range(P):
            d[j] = max(d[j], dmax * 1e-16)
            for k in range(j + 1):
                v = 0.0
                for i in range(P):
                    v += J[i, j] * J[i, k]
                A[j, k] = v
            A[j, j] += mu * d[j]
        if not _cholesky_solve(A, g, step):  # singular even with damping: damp more
            mu *= nu
            nu *= 2.0
            continue
        step_norm, x_norm = 0.0, 0.0
        for j in range(P):
            trial[j] = x[j] + step[j]
            step_norm += d[j] * step[j] * step[j]
            x_norm += d[j] * x[j] * x[j]
        f_new = _simulate(stocks, trial, target, r_new, J_new)
        nfev += 1
        if not np.isfinite(f_new):
            f_new = np.inf
        predicted = f
        for i in range(P):
            v = r[i]
            for j in range(P):
                v += J[i, j] * step[j]
            predicted -= v * v
        actual = f - f_new
        rho = actual / predicted if predicted > 0 else -np.inf
        done_x = np.sqrt(step_norm) <= TOL * (TOL + np.sqrt(x_norm))
        done_f = False
        if rho > 1e-4:
            done_f = abs(actual) <= TOL * f and predicted <= TOL * f and rho <= 2
            mu *= max(1 / 10, 1 - (2 * rho - 1) ** 3)
            nu = 2.0
            x[:], r[:], J[:], f = trial, r_new, J_new, f_new
            for j in range(P):
                v = 0.0
                for i in range(P):
                    v += J[i, j] * J[i, j]
                d[j] = max(d[j], v)
        else:
            mu *= nu
            nu *= 2.0
        if done_f or done_x or nfev >= MAX_NFEV:
            return f


@numba.njit(cache=True, parallel=True)
def _fit_all(stocks_2000, targets, x, sse):
    for i in numba.prange(len(stocks_2000)):
        sse[i] = _fit_one(stocks_2000[i], targets[i], x[i])


def fit(stocks_2000: np.ndarray, counts_2010: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loss rates of cohorts 2-9 (N, 8) and SSE (N,), as :func:`_peer_numpy.fit`."""
    n = len(stocks_2000)
    x, sse = np.full((n, P), X0), np.empty(n)
    _fit_all(np.ascontiguousarray(stocks_2000, dtype=float),
             np.ascontiguousarray(counts_2010[:, 1:], dtype=float), x, sse)
    return x, sse
