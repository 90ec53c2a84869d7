"""Random numbers of the batched program: one independent stream per unit, reproducible.

Every draw is a pure function of (seed, stream, call site, time step, element, draw
index): a counter-based generator (SplitMix64's finaliser applied to the combined
key, a bijection of 64 bits that passes BigCrush as a generator), so that

* a unit's draws do not depend on which other units share its batch, nor on how
  many rows the fitter gives it (Jacobian columns, several starts): rows with the
  same stream get the same numbers — common random numbers, so that each unit's
  objective is a deterministic function of its parameters;
* a run can be repeated exactly from its seed.

Distributions follow Vensim's RANDOM functions (and PySD, for the four it has): a
base draw stretched by ``r``, shifted by ``h`` and truncated to ``[m, x]``
(a draw from the conditional distribution, by inverting its CDF between the
bounds).  A stretch of 0 gives the shift itself, as PySD does.
"""

from __future__ import annotations

import numpy as np
from scipy import special

#: PySD's names of the random functions (Vensim's RANDOM ..., XMILE's NORMAL, RANDOM,
#: EXPRND, LOGNORMAL, POISSON) -> the distribution of :class:`Noise` drawn.
FUNCTIONS = {
    "random_0_1": "uniform", "random_uniform": "uniform", "random_normal": "normal",
    "random_exponential": "exponential", "random_gamma": "gamma", "random_beta": "beta",
    "random_weibull": "weibull", "random_poisson": "poisson", "random_binomial": "binomial",
    "random_negative_binomial": "negative_binomial", "random_triangular": "triangular",
    "normal": "normal", "random": "uniform", "exprnd": "exponential",
    "lognormal": "lognormal", "poisson": "poisson",
}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 arithmetic wraps around)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _combine(key: np.ndarray, value) -> np.ndarray:
    return _mix(key ^ (np.asarray(value, dtype=np.uint64) * _GOLDEN + _GOLDEN))


class Noise:
    """The random numbers of one run of ``batch`` rows.

    Parameters
    ----------
    seed
        The run's seed.
    streams
        The unit identity of each row, shape (batch,).
    batch
        Rows of the run.
    """

    def __init__(self, seed: int, streams, batch: int):
        streams = np.asarray(streams, dtype=np.int64).reshape(-1)
        if streams.shape != (batch,):
            raise ValueError(f"streams has {streams.size} entries for {batch} rows")
        with np.errstate(over="ignore"):
            seed_key = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
            self.keys = _combine(seed_key, streams.astype(np.uint64))
        self.step = 0

    def uniform01(self, site: int, shape: tuple[int, ...] = (), draw: int = 0) -> np.ndarray:
        """Uniform numbers in (0, 1), shape (batch, *shape), for call ``site`` at the
        current step."""
        size = int(np.prod(shape))
        with np.errstate(over="ignore"):
            key = _combine(_combine(_combine(self.keys, site), self.step), draw)
            bits = _mix(key[:, None] ^ (np.arange(size, dtype=np.uint64) * _GOLDEN))
        return (((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53).reshape(
            (len(self.keys),) + tuple(shape))

    # -- Vensim's RANDOM functions --------------------------------------------------------
    def uniform(self, site, shape, low, high):
        """RANDOM UNIFORM(m, x, s) and RANDOM 0 1: uniform between ``low`` and ``high``."""
        u = self.uniform01(site, shape)
        return low + (high - low) * u

    def normal(self, site, shape, low, high, mean, sd):
        """RANDOM NORMAL(m, x, h, r, s): normal of mean h and standard deviation r,
        truncated to [m, x]."""
        return self._truncated(site, shape, low, high, mean, sd, special.ndtr, special.ndtri)

    def exponential(self, site, shape, low, high, shift, stretch):
        """RANDOM EXPONENTIAL(m, x, h, r, s): exponential of mean 1 stretched by r,
        shifted by h, truncated to [m, x]: by the memoryless property it starts at
        max(m, h), as PySD's does (which a stretch of 0 returns)."""
        shift = np.maximum(_bound(low, -np.inf), shift)
        return self._truncated(site, shape, low, high, shift, stretch,
                               lambda z: -np.expm1(-np.maximum(z, 0)),
                               lambda p: -np.log1p(-p))

    def gamma(self, site, shape, low, high, order, shift, stretch):
        """RANDOM GAMMA(m, x, O, h, r, s): gamma of shape O (at least 1) and scale 1."""
        order = np.maximum(order, 1.0)
        return self._truncated(site, shape, low, high, shift, stretch,
                               lambda z: special.gammainc(order, np.maximum(z, 0)),
                               lambda p: special.gammaincinv(order, p))

    def beta(self, site, shape, low, high, alpha, beta_, shift, stretch):
        """RANDOM BETA(m, x, A, B, h, r, s)."""
        return self._truncated(site, shape, low, high, shift, stretch,
                               lambda z: special.betainc(alpha, beta_, np.clip(z, 0, 1)),
                               lambda p: special.betaincinv(alpha, beta_, p))

    def weibull(self, site, shape, low, high, k, shift, stretch):
        """RANDOM WEIBULL(m, x, S, h, r, s): Weibull of shape S scaled to mean 1."""
        scale = 1.0 / special.gamma(1.0 + 1.0 / k)
        return self._truncated(site, shape, low, high, shift, stretch,
                               lambda z: -np.expm1(-(np.maximum(z, 0) / scale) ** k),
                               lambda p: scale * (-np.log1p(-p)) ** (1.0 / k))

    def lognormal(self, site, shape, mean, sd):
        """XMILE's LOGNORMAL(mean, sd): a lognormal variable of that mean and standard
        deviation."""
        sigma2 = np.log1p((sd / mean) ** 2)
        mu = np.log(mean) - sigma2 / 2
        return np.exp(mu + np.sqrt(sigma2) * special.ndtri(self.uniform01(site, shape)))

    def poisson(self, site, shape, low, high, mean, shift, stretch):
        """RANDOM POISSON(m, x, M, h, r, s): Poisson of mean M (an integer before the
        stretch and shift)."""
        return self._discrete(site, shape, low, high, shift, stretch,
                              lambda k: special.pdtr(k, mean))

    def binomial(self, site, shape, low, high, p, n, shift, stretch):
        """RANDOM BINOMIAL(m, x, P, N, h, r, s): successes in N trials of probability P."""
        return self._discrete(site, shape, low, high, shift, stretch,
                              lambda k: np.where(k >= n, 1.0,
                                                 special.bdtr(np.minimum(k, n), n, p)))

    def negative_binomial(self, site, shape, low, high, p, n, shift, stretch):
        """RANDOM NEGATIVE BINOMIAL(m, x, P, N, h, r, s): trials needed for N successes of
        probability P (from N on)."""
        return self._discrete(site, shape, low, high, shift, stretch,
                              lambda k: special.nbdtr(k - n, n, p), start=n)

    def triangular(self, site, shape, low, high, start, peak, top):
        """RANDOM TRIANGULAR(m, x, S, P, T, s): triangular from S to T with its peak at P,
        truncated to [m, x]."""
        width = top - start
        left = np.where(width > 0, (peak - start) / np.where(width > 0, width, 1.0), 0.5)

        def cdf(z):
            z = np.clip(z, 0.0, 1.0)
            rising = z * z / np.where(left > 0, left, 1.0)
            falling = 1 - (1 - z) ** 2 / np.where(left < 1, 1 - left, 1.0)
            return np.where(z <= left, rising, falling)

        def ppf(p):
            rising = np.sqrt(p * left)
            falling = 1 - np.sqrt((1 - p) * (1 - left))
            return np.where(p <= left, rising, falling)

        return self._truncated(site, shape, low, high, start, width, cdf, ppf)

    # -- truncation by inverting the CDF between the bounds -------------------------------------
    def _truncated(self, site, shape, low, high, shift, stretch, cdf, ppf):
        low, high = _bound(low, -np.inf), _bound(high, np.inf)
        stretch = np.asarray(stretch, dtype=float)
        safe = np.where(stretch > 0, stretch, 1.0)
        lo, hi = cdf((low - shift) / safe), cdf((high - shift) / safe)
        u = self.uniform01(site, shape)
        value = shift + stretch * ppf(lo + u * (hi - lo))
        return np.where(stretch > 0, np.clip(value, low, high), shift)

    def _discrete(self, site, shape, low, high, shift, stretch, cdf, start=0):
        """An integer-valued base draw by inverting its CDF (search over the integers
        between the truncation bounds)."""
        low, high = _bound(low, -np.inf), _bound(high, np.inf)
        stretch = np.asarray(stretch, dtype=float)
        safe = np.where(stretch > 0, stretch, 1.0)
        k_low = np.maximum(np.ceil((low - shift) / safe), start)
        k_high = np.floor((high - shift) / safe)
        below = np.where(k_low > start, cdf(k_low - 1), 0.0)
        u = below + self.uniform01(site, shape) * (cdf(k_high) - below)
        k = np.broadcast_to(k_low, u.shape).copy()
        # bisection on the integers: the smallest k with cdf(k) >= u
        lo, hi = k - 1, np.broadcast_to(np.minimum(k_high, k_low + 1e6), u.shape).copy()
        for _ in range(64):
            if not np.any(hi - lo > 1):
                break
            mid = np.floor((lo + hi) / 2)
            up = cdf(mid) >= u
            hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
        return np.where(stretch > 0, shift + stretch * hi, shift)


def _bound(value, missing: float):
    """A truncation bound; :NA: (NaN) is no bound."""
    value = np.asarray(value, dtype=float)
    return np.where(np.isnan(value), missing, value)
