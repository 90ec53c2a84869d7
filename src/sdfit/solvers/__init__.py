"""Least-squares solvers over a batch of independent units."""

from .lm import LevenbergMarquardt, Solution, Status
from .reference import ScipyLeastSquares

__all__ = ["LevenbergMarquardt", "ScipyLeastSquares", "Solution", "Status"]
