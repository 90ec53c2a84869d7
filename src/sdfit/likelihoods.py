"""Likelihoods as residual transforms: the solver stays a least-squares solver.

For each likelihood the residuals ``r`` are chosen so that ``sum(r**2)`` is, up to terms
that do not depend on the model, -2 times the log-likelihood (for the gaussian family, with
the residual variance profiled out, a monotone function of it), so the least-squares
optimum is the maximum-likelihood estimate:

* **gaussian** — ``sqrt(w) (m - y)``: weighted least squares.
* **lognormal** — ``sqrt(w) (log m - log y)``: errors on the log scale.
* **poisson** — deviance residuals ``sign(m - y) sqrt(2 w (y log(y/m) - (y - m)))``.
* **negative-binomial** (NB2, variance ``m + α m²``) — deviance residuals for the current
  dispersion ``α``; the fitter alternates them with a per-unit (or per unit and variable)
  maximisation of the likelihood over ``α``, which converges to the joint maximum.

A robust ``loss`` (SciPy's ``soft_l1``, ``huber``, ``cauchy`` with ``f_scale``) maps a
gaussian residual ``r`` to ``f sign(r) sqrt(ρ((r/f)²))``, whose square is SciPy's loss
``f² ρ((r/f)²)``: minimising it is minimising the robust objective exactly.
"""

from __future__ import annotations

import numpy as np

#: Bounds of log α searched by the dispersion update (α from 2e-9, nearly Poisson, to 2e4).
LOG_ALPHA = (-20.0, 10.0)


def residuals(kind: str, model: np.ndarray, observed: np.ndarray, sqrt_w: np.ndarray,
              mask: np.ndarray, loss: str = "linear", f_scale: float = 1.0,
              alpha: np.ndarray | None = None) -> np.ndarray:
    """Residuals of one likelihood, 0 in padded slots (``mask`` False)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "gaussian":
            r = sqrt_w * (model - observed)
            if loss != "linear":
                r = robust(r, loss, f_scale)
        elif kind == "lognormal":
            r = sqrt_w * (np.log(np.where(model > 0, model, np.nan)) - np.log(observed))
        else:
            d = deviance(kind, model, observed, alpha)
            r = np.sign(model - observed) * np.sqrt(sqrt_w**2 * np.maximum(d, 0.0))
    return np.where(mask, r, 0.0)


def robust(r: np.ndarray, loss: str, f_scale: float) -> np.ndarray:
    """``f sign(r) sqrt(ρ(z))`` with ``z = (r / f)²`` and SciPy's ρ of ``loss``."""
    z = (r / f_scale) ** 2
    if loss == "soft_l1":
        rho = 2 * (np.sqrt(1 + z) - 1)
    elif loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    elif loss == "cauchy":
        rho = np.log1p(z)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return f_scale * np.sign(r) * np.sqrt(rho)


def deviance(kind: str, m: np.ndarray, y: np.ndarray, alpha=None) -> np.ndarray:
    """Unit deviance of a count ``y`` at mean ``m`` (NaN where ``m`` is impossible)."""
    m = np.where(m > 0, m, np.where((m == 0) & (y == 0), 0.0, np.nan))
    ylog = np.where(y > 0, y * np.log(y / m), 0.0)
    if kind == "poisson":
        return 2 * (ylog - (y - m))
    a = np.maximum(alpha, np.exp(LOG_ALPHA[0]))
    return 2 * (ylog - (y + 1 / a) * np.log((1 + a * y) / (1 + a * m)))


def log_likelihood(kind: str, m: np.ndarray, y: np.ndarray, w: np.ndarray, mask: np.ndarray,
                   alpha=None) -> np.ndarray:
    """Per-observation log-likelihood of the count likelihoods (0 in padded slots)."""
    from scipy.special import gammaln  # only counts need it: not imported with sdfit

    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "poisson":
            ll = y * np.log(m) - m - gammaln(y + 1)
            ll = np.where((y == 0) & (m == 0), 0.0, ll)
        else:
            a = np.maximum(alpha, np.exp(LOG_ALPHA[0]))
            r = 1 / a
            ll = (gammaln(y + r) - gammaln(r) - gammaln(y + 1) - r * np.log1p(a * m)
                  + np.where(y > 0, y * np.log(a * m / (1 + a * m)), 0.0))
    return np.where(mask, w * ll, 0.0)


def nll(kind: str, loss: str, r: np.ndarray, m: np.ndarray, y: np.ndarray, sqrt_w: np.ndarray,
        mask: np.ndarray, alpha=None) -> np.ndarray:
    """Negative log-likelihood of each row at its optimum (NaN for a robust loss, which is
    not a likelihood).  For the gaussian family the residual variance is profiled out:
    ``n/2 (log(2π SSE/n) + 1) - sum(log sqrt(w))`` (on the log scale, plus ``sum(log y)``)."""
    n = np.einsum("ij->i", mask, dtype=np.int64)  # as mask.sum(axis=1), faster
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind in ("gaussian", "lognormal"):
            if loss != "linear":
                return np.full(len(r), np.nan)
            sse = np.einsum("ij,ij->i", r, r)
            out = n / 2 * (np.log(2 * np.pi * sse / n) + 1) - np.where(
                mask, np.log(sqrt_w), 0.0).sum(axis=1)
            if kind == "lognormal":
                out = out + np.where(mask, np.log(np.where(mask, y, 1.0)), 0.0).sum(axis=1)
            return out
        return -log_likelihood(kind, m, y, sqrt_w**2, mask, alpha).sum(axis=1)


def extra_parameters(kind: str, loss: str, n_dispersions: int) -> int:
    """Parameters of the likelihood itself, for AIC and BIC: the residual variance of the
    gaussian family, the dispersions of the negative binomial."""
    if kind in ("gaussian", "lognormal"):
        return 1 if loss == "linear" else 0
    return n_dispersions if kind == "negative-binomial" else 0


def update_dispersion(m: np.ndarray, y: np.ndarray, w: np.ndarray, mask: np.ndarray,
                      groups: np.ndarray, n_groups: int, iterations: int = 60) -> np.ndarray:
    """The negative binomial's α maximising the log-likelihood of each group of slots
    (``groups``: (n, M) codes in ``range(n_groups)``) given the means ``m``: a golden-section
    search on log α over :data:`LOG_ALPHA`, vectorised over the groups (60 iterations leave
    an interval of 1e-11 in log α)."""
    lo = np.full(n_groups, LOG_ALPHA[0])
    hi = np.full(n_groups, LOG_ALPHA[1])
    ratio = (np.sqrt(5) - 1) / 2

    def total(log_alpha: np.ndarray) -> np.ndarray:
        ll = log_likelihood("negative-binomial", m, y, w, mask, np.exp(log_alpha[groups]))
        ll = np.where(np.isfinite(ll), ll, -1e300)
        return np.bincount(groups.ravel(), weights=ll.ravel(), minlength=n_groups)

    for _ in range(iterations):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = total(a) >= total(b)  # the maximum lies in [lo, b]
        hi, lo = np.where(left, b, hi), np.where(left, lo, a)
    return np.exp((lo + hi) / 2)
