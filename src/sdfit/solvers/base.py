"""The solver contract: settings with one set of tolerances, ``solve(residuals, x0, lower,
upper) -> Solution``, and per-unit outcomes as a status (optimistix's spirit: a failed unit
is data, never an exception)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from .. import settings

#: fun(x (n, P), units (n,)) -> residuals (n, M), for parameter rows of the given units.
ResidualFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

EPS = np.finfo(float).eps
WORKING = -99  # status of a unit still iterating


class Status(enum.IntEnum):
    """Why a unit's fit stopped.  Positive values are successes."""

    NOT_FINITE = -1
    MAX_NFEV = 0
    GTOL = 1
    FTOL = 2
    XTOL = 3

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def success(self) -> bool:
        return self > 0


_MESSAGES = {
    Status.NOT_FINITE: "the residuals are NaN or infinite at the starting point (model or data)",
    Status.MAX_NFEV: "the maximum number of model evaluations was reached",
    Status.GTOL: "the gradient is orthogonal to the residuals (gtol)",
    Status.FTOL: "the sum of squares stopped decreasing (ftol)",
    Status.XTOL: "the parameters stopped changing (xtol)",
}


class Outcomes:
    """Per-unit outcome helpers of anything with a ``status`` array of Status values."""

    status: np.ndarray

    @property
    def success(self) -> np.ndarray:
        return self.status > 0

    @property
    def messages(self) -> list[str]:
        return [Status(s).message for s in self.status]


@dataclass(frozen=True)
class Solution(Outcomes):
    """Per-unit outcome of a batched solve (arrays over the N units).

    ``nfev`` counts every residual evaluation spent on a unit, Jacobian
    columns included, so it compares with the model runs of a per-unit solver.
    """

    x: np.ndarray  # (N, P)
    residuals: np.ndarray  # (N, M)
    jacobian: np.ndarray  # (N, M, P) forward differences at x
    sse: np.ndarray  # (N,)
    status: np.ndarray  # (N,) Status values
    nfev: np.ndarray  # (N,)
    njev: np.ndarray  # (N,)



@dataclass(frozen=True)
class Solver(abc.ABC):
    """Settings of a solver of many independent least-squares problems, one per unit.

    Attributes
    ----------
    ftol, xtol, gtol : float
        Stop when the sum of squares, the parameters or the cosine between the residuals
        and the Jacobian's columns change by less than this (relatively), as MINPACK does.
    max_nfev : int, optional
        Residual evaluations per unit (Jacobian columns included) before giving up;
        default ``100 * (P + 1)``.
    """

    ftol: float = settings.setting("solver", "ftol").default
    xtol: float = settings.setting("solver", "xtol").default
    gtol: float = settings.setting("solver", "gtol").default
    max_nfev: int | None = None

    #: Whether :func:`sdfit.solvers.joint.solve_shared` can run with these settings.
    joint: ClassVar[bool] = False

    def __post_init__(self):
        for key in ("ftol", "xtol", "gtol", "max_nfev"):
            object.__setattr__(self, key, settings.check("solver", key, getattr(self, key),
                                                         f"{type(self).__name__}({key}=...)"))

    @abc.abstractmethod
    def solve(self, fun: ResidualFunction, x0: np.ndarray, lower: np.ndarray,
              upper: np.ndarray) -> Solution:
        """Minimise ``sum(fun(x, u)**2)`` for every unit ``u`` independently, from the rows
        of ``x0`` (N, P), within the bounds ``lower``/``upper`` ((P,) or (N, P))."""

    def describe(self) -> dict:
        """The settings as plain data, for run records and fingerprints."""
        return {"solver": type(self).__name__} | {f.name: getattr(self, f.name)
                                                  for f in fields(self)}
