"""Per-unit piecewise-linear tables: the inputs a fit gives each unit (a time series, or a
lookup of its own) in place of a model variable."""

from __future__ import annotations

import numpy as np

from ...exceptions import DataError


class UnitTable:
    """One table of points per row, read by linear interpolation.

    Parameters
    ----------
    x, y
        Arrays of shape (R, K): row r holds the points (x[r, k], y[r, k]) sorted by x, its
        unused places at the end NaN (a row with fewer points).  R is the number of rows
        of the batch, or 1 for a table every row shares.

    Calling ``table(at)`` with ``at`` a scalar or an (R,) array gives (R,) values:
    linear interpolation between the points, held at the first and last value outside
    them (as Vensim holds data).  A row without any point gives NaN.
    """

    __slots__ = ("x", "y", "count")

    def __init__(self, x, y):
        x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
        if x.ndim != 2 or x.shape != y.shape:
            raise DataError(f"A per-unit table needs x and y of the same shape (rows, points); "
                            f"got {x.shape} and {y.shape}.")
        valid = ~np.isnan(x)
        if np.any(valid[:, 1:] & ~valid[:, :-1]):
            raise DataError("A per-unit table has points after its NaN padding; pad rows "
                            "at their end.")
        if np.any(np.diff(x, axis=1) < 0):
            raise DataError("A per-unit table's x values must be sorted in each row.")
        self.x, self.y = x, y
        self.count = valid.sum(axis=1)

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    def take(self, rows) -> UnitTable:
        """The tables of the given rows."""
        rows = np.asarray(rows)
        return UnitTable(self.x[rows], self.y[rows])

    def __call__(self, at):
        at = np.asarray(at, dtype=float)
        rows = max(self.rows, at.size if at.ndim else 1)
        at = np.broadcast_to(at.reshape(-1) if at.ndim else at, (rows,))
        x = np.broadcast_to(self.x, (rows, self.x.shape[1]))
        y = np.broadcast_to(self.y, (rows, self.y.shape[1]))
        last = np.broadcast_to(self.count, (rows,)) - 1
        # the segment of each row: from its last point at or below ``at``
        below = np.sum(x <= at[:, None], axis=1)  # NaN compares False: padding never counts
        lo = np.clip(below - 1, 0, np.maximum(last, 0))
        hi = np.minimum(lo + 1, np.maximum(last, 0))
        pick = np.arange(rows)
        x0, x1, y0, y1 = x[pick, lo], x[pick, hi], y[pick, lo], y[pick, hi]
        inside = (x1 > x0) & (below > 0)
        weight = np.where(inside, (at - x0) / np.where(inside, x1 - x0, 1.0), 0.0)
        value = y0 + weight * (y1 - y0)
        return np.where(last >= 0, value, np.nan)
