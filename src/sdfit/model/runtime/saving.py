"""What a run records and when: PySD's saving rules (every SAVEPER, or given times) and the
recorded values as arrays with a batch axis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: PySD's relative precision for deciding whether a time is the final or a saving time.
TIME_RPREC = 1e-5


def _rounded(times: list[tuple[float, float]]) -> np.ndarray:
    """Saved times rounded to the precision of their TIME STEP, as PySD labels its rows."""
    stamps = np.array([t for t, _ in times], dtype=float)
    decimals = -np.trunc(np.log10(np.array([dt for _, dt in times]) * TIME_RPREC)).astype(int)
    for places in np.unique(decimals):
        chosen = decimals == places
        stamps[chosen] = np.round(stamps[chosen], places)
    return stamps


def _column(values: list, batch_size: int) -> np.ndarray:
    """One variable's recorded values over time as an array (B, T, *dims)."""
    try:
        stacked = np.asarray(values, dtype=float)  # (T,) when scalar, (T, B|1, *dims) else
    except ValueError:  # scalar at some times, one value per unit at others
        return np.stack([_batched(v, batch_size) for v in values], axis=1)
    if stacked.ndim == 1:
        return np.broadcast_to(stacked, (batch_size, len(values)))
    return np.broadcast_to(np.moveaxis(stacked, 0, 1),
                           (batch_size, len(values)) + stacked.shape[2:])


def _batched(value, batch_size: int) -> np.ndarray:
    """A recorded value with its batch axis spelt out: () or (B|1, *dims) -> (B, *dims)."""
    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return np.full(batch_size, value)
    return np.broadcast_to(value, (batch_size,) + value.shape[1:])


def _every_saveper(time: float, t0: float, dt: float, saveper: float) -> bool:
    """PySD's default saving rule: every SAVEPER from the initial time."""
    prec = dt * TIME_RPREC
    delay = time - t0
    return delay % saveper < prec or -delay % saveper < prec


def _at_times(times: Sequence[float]):
    """Saving rule for explicit times, as PySD's ``return_timestamps``."""
    pending = sorted(float(t) for t in np.atleast_1d(times))

    def due(time: float, t0: float, dt: float, saveper: float) -> bool:
        prec = dt * TIME_RPREC
        while pending and pending[0] < time - prec:
            pending.pop(0)  # not on the TIME STEP grid: never reached
        if pending and abs(time - pending[0]) <= prec:
            pending.pop(0)
            return True
        return False

    return due
