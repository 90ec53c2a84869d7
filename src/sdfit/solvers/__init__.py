"""Least-squares solvers over a batch of independent units (and the joint solver of shared
parameters)."""

from .base import Solution, Solver, Status
from .lm import LevenbergMarquardt
from .scipy import ScipyLeastSquares

__all__ = ["LevenbergMarquardt", "ScipyLeastSquares", "Solution", "Solver", "Status",
           "default_solver"]


def default_solver(engine: str, options: dict | None = None, shared: bool = False) -> Solver:
    """The solver for an engine, decided here only: the batched engine and any problem with
    shared parameters get the batched Levenberg–Marquardt; PySD's runtime, which runs one
    unit per call, SciPy's ``least_squares`` per unit."""
    options = dict(options or {})
    if engine == "pysd" and not shared:
        return ScipyLeastSquares(**options)
    return LevenbergMarquardt(**options)
