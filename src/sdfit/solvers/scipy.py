"""SciPy's ``least_squares`` run unit by unit: the reference for tests and the fallback engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ResidualFunction, Solution, Solver, Status

# scipy's status codes -> ours (4: both ftol and xtol -> ftol)
_FROM_SCIPY = {-1: Status.NOT_FINITE, 0: Status.MAX_NFEV, 1: Status.GTOL, 2: Status.FTOL,
               3: Status.XTOL, 4: Status.FTOL}


@dataclass(frozen=True)
class ScipyLeastSquares(Solver):
    """Per-unit ``scipy.optimize.least_squares`` with the trust-region reflective method
    (it accepts fewer residuals than parameters, which ``method="lm"`` refuses)."""

    method: str = "trf"

    def solve(self, fun: ResidualFunction, x0: np.ndarray, lower: np.ndarray,
              upper: np.ndarray) -> Solution:
        from scipy.optimize import least_squares  # imported when used: it is slow to import

        x0 = np.array(x0, dtype=float, ndmin=2)
        n, p = x0.shape
        lower = np.broadcast_to(np.asarray(lower, float), (n, p))
        upper = np.broadcast_to(np.asarray(upper, float), (n, p))
        rows = []
        for u in range(n):
            units = np.array([u])

            def residuals(x, units=units):
                return fun(x[None, :], units)[0]

            start = np.clip(x0[u], lower[u], upper[u])
            r0 = residuals(start)
            if not np.all(np.isfinite(r0)):
                rows.append((start, r0, np.full((r0.size, p), np.nan), Status.NOT_FINITE, 1, 0))
                continue
            res = least_squares(residuals, start, bounds=(lower[u], upper[u]), method=self.method,
                                ftol=self.ftol, xtol=self.xtol, gtol=self.gtol,
                                max_nfev=self.max_nfev)
            nfev = res.nfev + res.njev * p  # count Jacobian columns too, as the batched solver
            rows.append((res.x, res.fun, res.jac, _FROM_SCIPY[res.status], nfev, res.njev))
        x, r, jac, status, nfev, njev = (np.array(c) for c in zip(*rows, strict=True))
        return Solution(x, r, jac, np.einsum("ij,ij->i", r, r), status, nfev, njev)
