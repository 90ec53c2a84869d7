"""Batched Levenberg–Marquardt: many independent least-squares problems at once.

Each unit keeps its own parameters, damping, scaling and convergence state;
the residual function is called once per iteration for all units still
working, so the model runs over the batch axis.  Bounds are handled by
projection with an active set: a parameter at a bound whose gradient points
out of the box is held there for the step, and every trial point is clipped
into the box.  Jacobians are batched forward differences, so any model the
engine runs can be fitted, kept up to date between them by Broyden's secant
updates.

The per-unit arithmetic of an iteration runs compiled (``lm.c``, built once per machine
by :mod:`sdfit.native`) when a C compiler is at hand, as the same operations unit by
unit; the NumPy code below is its reference and fallback (``SDFIT_NATIVE=0``).  Both
evaluate the model on the same rows in the same calls.  When the residual function is a
C function too (its ``native`` attribute, :mod:`sdfit.compiled_residuals`), the whole
loop runs compiled (``lm_start``, ``lm_solve``): blocks of units iterated to convergence
on every core, each unit's numbers those of the loop here.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .base import EPS, WORKING, ResidualFunction, Solution, Solver, Status


@dataclass(frozen=True)
class LevenbergMarquardt(Solver):
    """Settings of the batched Levenberg–Marquardt solver (tolerances: see :class:`Solver`).

    Attributes
    ----------
    diff_step : float
        Relative step of the forward differences.
    broyden : bool
        Update the Jacobian by Broyden's rank-1 secant formula after each step
        instead of recomputing it by finite differences; a finite difference is
        still taken after a rejected step and before a unit stops.  About halves
        the model evaluations.
    """

    diff_step: float = EPS**0.5
    broyden: bool = True
    joint = True  # the shared-parameter solver runs with these settings

    def solve(self, fun: ResidualFunction, x0: np.ndarray, lower: np.ndarray,
              upper: np.ndarray) -> Solution:
        """Minimise ``sum(fun(x, u)**2)`` for every unit ``u`` independently.

        Parameters
        ----------
        fun
            Residuals for parameter rows ``x`` (n, P) of units ``units`` (n,).
        x0
            Starting points, shape (N, P).
        lower, upper
            Bounds, shape (P,) or (N, P); may be infinite.
        """
        return _Run(self, fun, np.array(x0, dtype=float, ndmin=2), lower, upper).solve()


class _Run:
    """State of one batched solve; every array has the N units on its first axis."""

    def __init__(self, settings: LevenbergMarquardt, fun, x0, lower, upper):
        self.settings, self.fun = settings, fun
        n, p = x0.shape
        self.lower = np.ascontiguousarray(np.broadcast_to(np.asarray(lower, float), (n, p)))
        self.upper = np.ascontiguousarray(np.broadcast_to(np.asarray(upper, float), (n, p)))
        self.max_nfev = settings.max_nfev or 100 * (p + 1)
        self.x = np.clip(x0, self.lower, self.upper)
        self.nfev = np.zeros(n, dtype=np.int64)
        self.njev = np.zeros(n, dtype=np.int64)
        self.status = np.full(n, WORKING, dtype=np.int64)
        self.fresh = np.zeros(n, dtype=bool)  # Jacobian is a finite difference at x
        self.units = np.arange(n, dtype=np.int64)
        self.native = None  # the compiled iteration, when solve() runs the Python loop
        self.addresses: dict[str, int] | None = None

    def evaluate(self, x: np.ndarray, units: np.ndarray) -> np.ndarray:
        np.add.at(self.nfev, units, 1)
        return self.fun(x, units)

    def differentiate(self, units: np.ndarray, r: np.ndarray, jac: np.ndarray) -> None:
        """Forward-difference Jacobians for some units, all columns in one batched call."""
        x = self.x[units]
        n, p = x.shape
        if n == 0:
            return
        h = self.settings.diff_step * np.maximum(np.abs(x), 1.0)
        # step backwards where a forward step would leave the box
        h = np.where(x + h > self.upper[units], -h, h)
        xs = np.repeat(x[:, None, :], p, axis=1)  # (n, P, P): row j perturbs parameter j
        xs[:, np.arange(p), np.arange(p)] += h
        h = xs[:, np.arange(p), np.arange(p)] - x  # the step actually taken
        rs = self.evaluate(xs.reshape(n * p, p), np.repeat(units, p)).reshape(n, p, -1)
        self.njev[units] += 1
        self.fresh[units] = True
        jac[units] = ((rs - r[units][:, None, :]) / h[:, :, None]).transpose(0, 2, 1)

    def solve(self) -> Solution:
        compiled = getattr(self.fun, "native", None)
        if compiled is not None:
            library = _native((compiled.n_residuals, self.x.shape[1]))
            if library is not None:
                return self.solve_compiled(compiled, library)
        self.native = _native()
        n, p = self.x.shape
        r = np.ascontiguousarray(self.evaluate(self.x, self.units), dtype=float)
        sse = np.einsum("ij,ij->i", r, r)
        finite = np.isfinite(sse)
        self.status[~finite] = Status.NOT_FINITE
        jac = np.full((n, r.shape[1], p), np.nan)
        work = self.units[finite]
        self.differentiate(work, r, jac)
        diag = np.einsum("ijk,ijk->ik", jac, jac)  # Moré's scaling, kept non-decreasing
        mu = np.full(n, 1e-3)  # relative to the scaling diag(JᵀJ)
        nu = np.full(n, 2.0)
        while work.size:
            work = self.iterate(work, r, sse, jac, diag, mu, nu)
        # units that stopped on an accepted step: the Jacobian at their final point, in
        # one batched call, for the diagnostics that rely on it
        self.differentiate(self.units[finite & ~self.fresh], r, jac)
        return Solution(self.x, r, jac, sse, self.status, self.nfev, self.njev)

    def iterate(self, work, r, sse, jac, diag, mu, nu) -> np.ndarray:
        """One damped Gauss–Newton step for the units in ``work``; returns those left."""
        if self.native is not None:
            return self.iterate_native(work, r, sse, jac, diag, mu, nu)
        s = self.settings
        x, J, rw, f = self.x[work], jac[work], r[work], sse[work]
        g = np.einsum("ijk,ij->ik", J, rw)
        free = ~(((x <= self.lower[work]) & (g > 0)) | ((x >= self.upper[work]) & (g < 0)))
        # gtol: largest cosine between the residuals and a free column of the Jacobian
        col_norm = np.sqrt(np.einsum("ijk,ijk->ik", J, J))
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.abs(g) / (col_norm * np.sqrt(f)[:, None])
        cosine = np.where(free & (col_norm > 0), cosine, 0.0)
        done_g = (f == 0) | (np.nan_to_num(cosine.max(axis=1), nan=0.0) <= s.gtol)

        d = np.maximum(diag[work], np.max(diag[work], axis=1, keepdims=True) * EPS)
        d = np.where(d > 0, d, 1.0)
        A = np.einsum("ijk,ijl->ikl", J, J) + mu[work, None, None] * _diag(d)
        both = free[:, :, None] & free[:, None, :]
        A = np.where(both, A, 0.0) + _diag(~free)  # held parameters: identity rows
        step = -np.linalg.solve(A, np.where(free, g, 0.0)[..., None])[..., 0]
        trial = np.clip(x + step, self.lower[work], self.upper[work])
        step = trial - x

        r_new = self.evaluate(trial, work)
        f_new = np.einsum("ij,ij->i", r_new, r_new)
        f_new = np.where(np.isfinite(f_new), f_new, np.inf)
        predicted_r = rw + np.einsum("ijk,ik->ij", J, step)
        predicted = f - np.einsum("ij,ij->i", predicted_r, predicted_r)
        actual = f - f_new
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(predicted > 0, actual / predicted, -np.inf)
        accept = (rho > 1e-4) & ~done_g

        step_norm = np.linalg.norm(np.sqrt(d) * step, axis=1)
        x_norm = np.linalg.norm(np.sqrt(d) * x, axis=1)
        done_x = step_norm <= s.xtol * (s.xtol + x_norm)
        done_f = accept & (np.abs(actual) <= s.ftol * f) & (predicted <= s.ftol * f) & (rho <= 2)

        # a rejection with a secant Jacobian calls for a finite difference, not more damping
        fresh = self.fresh[work]
        stale = ~accept & ~done_g & ~fresh
        if s.broyden:
            # rank-1 secant update along the accepted step: the Jacobian at the new point
            # reproduces the change of residuals just observed
            moved = work[accept]
            norm2 = np.einsum("ij,ij->i", step[accept], step[accept])
            secant = (r_new - predicted_r)[accept] / np.where(norm2 > 0, norm2, 1.0)[:, None]
            jac[moved] = J[accept] + secant[:, :, None] * step[accept][:, None, :]
        self.fresh[work[accept]] = False

        good, bad = work[accept], work[~accept & ~stale]
        t = 2 * rho[accept] - 1
        mu[good] *= np.maximum(1 / 10, 1 - t * t * t)  # Nielsen's update
        nu[good] = 2.0
        mu[bad] *= nu[bad]
        nu[bad] *= 2.0
        self.x[good], r[good], sse[good] = trial[accept], r_new[accept], f_new[accept]

        status = np.select([done_g, done_f, done_x & ~stale, self.nfev[work] >= self.max_nfev],
                           [Status.GTOL, Status.FTOL, Status.XTOL, Status.MAX_NFEV], WORKING)
        # a unit stops only on a test made with a finite-difference Jacobian (at its final
        # point, or one tiny step before it): the tests and the diagnostics rely on it
        refresh = (stale | ((status != WORKING) & ~fresh)) & (self.nfev[work] < self.max_nfev)
        if not s.broyden:  # plain Levenberg–Marquardt: a new Jacobian after every success
            refresh |= (status == WORKING) & accept
        status[refresh] = WORKING
        self.status[work] = status
        if refresh.any():
            self.differentiate(work[refresh], r, jac)
        diag[work] = np.maximum(diag[work], np.einsum("ijk,ijk->ik", jac[work], jac[work]))
        return work[status == WORKING]

    def solve_compiled(self, compiled, library) -> Solution:
        """:meth:`solve` in compiled code (``lm_start``, then ``lm_solve``) calling the
        residuals' own C function: the same steps in the same order for every unit,
        without a return to Python per iteration, blocks of units shared out to every
        core.  Only the sums that start the scaling are NumPy's, as in :meth:`solve`."""
        s, (n, p), m = self.settings, self.x.shape, compiled.n_residuals
        r, jac = np.empty((n, m)), np.full((n, m, p), np.nan)
        head = (compiled.function, compiled.context, n)
        self._blocks(library.lm_start, head, (m, p, s.diff_step, _ptr(_CODES)),
                     (self.x, jac, r, self.fresh, self.status, self.nfev, self.njev,
                      self.upper))
        sse = np.einsum("ij,ij->i", r, r)
        diag = np.einsum("ijk,ijk->ik", jac, jac)  # Moré's scaling, kept non-decreasing
        mu, nu = np.full(n, 1e-3), np.full(n, 2.0)
        self._blocks(library.lm_solve, head,
                     (m, p, s.diff_step, s.ftol, s.xtol, s.gtol, int(s.broyden),
                      self.max_nfev, _ptr(_CODES)),
                     (self.x, jac, r, sse, diag, mu, nu, self.fresh, self.status, self.nfev,
                      self.njev, self.lower, self.upper, np.isfinite(sse)))
        return Solution(self.x, r, jac, sse, self.status, self.nfev, self.njev)

    @staticmethod
    def _blocks(function, head, settings, arrays) -> None:
        """Run a compiled pass over blocks of rows taken from a shared counter, on every
        core (ctypes releases the GIL)."""
        from .. import native

        counter = np.zeros(1, dtype=np.int64)  # the next block's first row, for all threads
        args = (*head, _ptr(counter), BLOCK, *settings, *map(_ptr, arrays))
        threads = min(native.threads(), -(-head[2] // BLOCK))
        if threads <= 1:
            failed = function(*args)
        else:
            failed = max(native.pool().map(lambda _: function(*args), range(threads)))
        if failed:
            raise MemoryError("The compiled solver could not allocate its buffers.")

    def iterate_native(self, work, r, sse, jac, diag, mu, nu) -> np.ndarray:
        """:meth:`iterate` with its per-unit arithmetic compiled (``lm.c``)."""
        s, lib = self.settings, self.native
        if self.addresses is None:  # the solver's arrays are updated in place, never moved
            self.addresses = {name: _ptr(v) for name, v in dict(
                x=self.x, jac=jac, r=r, sse=sse, diag=diag, mu=mu, nu=nu, fresh=self.fresh,
                status=self.status, nfev=self.nfev, lower=self.lower, upper=self.upper,
                codes=_CODES).items()}
        a = self.addresses
        p, m, nw = self.x.shape[1], r.shape[1], len(work)
        trial, step, d = np.empty((nw, p)), np.empty((nw, p)), np.empty((nw, p))
        done_g, refresh = np.empty(nw, dtype=bool), np.empty(nw, dtype=bool)
        w, at_trial, at_step, at_d, at_done_g = (_ptr(work), _ptr(trial), _ptr(step), _ptr(d),
                                                 _ptr(done_g))
        lib.lm_propose(nw, w, m, p, a["x"], a["jac"], a["r"], a["sse"], a["diag"], a["mu"],
                       a["lower"], a["upper"], s.gtol, at_trial, at_step, at_d, at_done_g)
        r_new = np.ascontiguousarray(self.evaluate(trial, work), dtype=float)
        lib.lm_update(nw, w, m, p, s.ftol, s.xtol, int(s.broyden), self.max_nfev, a["codes"],
                      a["x"], a["jac"], a["r"], a["sse"], a["mu"], a["nu"], a["fresh"],
                      a["status"], a["nfev"], _ptr(r_new), at_trial, at_step, at_d, at_done_g,
                      _ptr(refresh))
        if refresh.any():
            self.differentiate(work[refresh], r, jac)
        lib.lm_rescale(nw, w, m, p, a["jac"], a["diag"])
        return work[self.status[work] == WORKING]


#: Units per block of the compiled loop: a step's trial points fill one block of the
#: model's kernel, and blocks are small enough to share a tail of slow units out evenly.
BLOCK = 64

#: Status codes as lm.c receives them: working, then the stopping tests in their order.
_CODES = np.array([WORKING, Status.GTOL, Status.FTOL, Status.XTOL, Status.MAX_NFEV,
                   Status.NOT_FINITE], dtype=np.int64)


def _ptr(array: np.ndarray) -> int:
    assert array.flags.c_contiguous  # the C code walks rows by their length
    return array.ctypes.data


def compiled(shape: tuple[int, int] | None = None) -> bool:
    """Build (or load) the compiled iteration now, for one problem shape (residuals and
    parameters per unit) or any; True when the solver will use it."""
    return _native(shape) is not None


@cache
def _native(shape: tuple[int, int] | None = None):
    """``lm.c`` compiled, or None (NumPy then).  Built for one shape (``m`` residuals,
    ``p`` parameters per unit) its short loops are unrolled, with the same numbers; shapes
    too large to unroll get the general build."""
    from .. import native

    m, p = shape or (0, 0)
    defines = f"#define SHAPE_M {m}\n#define SHAPE_P {p}\n" if 0 < m * p <= 1024 else ""
    library = native.library(defines + (Path(__file__).parent / "lm.c").read_text())
    if library is None:
        return None
    types = {"i": ctypes.c_int64, "p": ctypes.c_void_p, "d": ctypes.c_double}
    for name, signature in (("lm_propose", "ipii" + "p" * 8 + "d" + "p" * 4),
                            ("lm_update", "ipiiddii" + "p" * 16),
                            ("lm_rescale", "ipiipp"),
                            ("lm_start", "ppipiiidp" + "p" * 8),
                            ("lm_solve", "ppipiiiddddiip" + "p" * 14)):
        function = getattr(library, name)
        function.restype = ctypes.c_int if name in ("lm_start", "lm_solve") else None
        function.argtypes = [types[t] for t in signature]
    return library


def _diag(values: np.ndarray) -> np.ndarray:
    """Batch of diagonal matrices from rows of ``values``."""
    n, p = values.shape
    out = np.zeros((n, p, p), dtype=float)
    out[:, np.arange(p), np.arange(p)] = values
    return out
