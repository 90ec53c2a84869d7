"""DELAY MATERIAL's pipeline (made by generated programs as ``F.material_delay``).

Like DELAY FIXED's (:class:`~.functions.FixedDelay`), a ring buffer of what is in the
pipeline with the batch (and any subscripts) behind its leading axis, moved once per
TIME STEP whatever the integration method, as Vensim's discrete delays are.
"""

from __future__ import annotations

import numpy as np

#: What Vensim considers zero (PySD's ``SMALL_VENSIM``).
SMALL_VENSIM = 1e-6


def compact_order(order):
    """An order the same for every unit as a Python int, else an int array."""
    order = np.asarray(order)
    if order.ndim == 0 or np.all(order == order.flat[0]):
        return int(order.flat[0])
    return order.astype(int)


def steps(delay_time, time_step):
    """Whole steps of a delay: round(max(delay time / TIME STEP, 1)), as PySD's
    ``DelayFixed``."""
    return np.round(np.maximum(np.asarray(delay_time) / time_step, 1) + SMALL_VENSIM)


class MaterialDelay:
    """DELAY MATERIAL's pipeline (Vensim; PySD has none).

    The input of each step leaves ``steps(delay time)`` steps later, with the delay
    time it entered with; what leaves at the same step adds up, and a step nothing
    leaves gives the missing value.  The pipeline starts full of the initial value for
    the first ``steps(initial delay time)`` steps, so that with a constant delay time
    it is DELAY FIXED.  Entries are held per step in a ring buffer of (amount, whether
    anything leaves then), grown when a delay time outgrows it.
    """

    def __init__(self, initial, delay_time, time_step):
        self.first = steps(delay_time, time_step)
        self.initial = initial
        self.output = initial
        self.amount = self.filled = None
        self.step = 0

    def push(self, value, delay_time, time_step, missing) -> MaterialDelay:
        """Send this step's input down the pipeline and move the output on one step."""
        lag = steps(delay_time, time_step)
        shape = np.broadcast_shapes(np.shape(value), np.shape(lag), np.shape(self.initial),
                                    np.shape(self.first))
        if self.amount is None:
            self._start(shape, lag)
        elif shape != self.amount.shape[1:]:
            self._broadcast(shape)
        self._fit(int(np.max(lag)) + 1)
        size = self.amount.shape[0]
        target = (self.step + np.broadcast_to(lag, shape).astype(int)) % size
        flat = np.arange(int(np.prod(shape)))
        amount = self.amount.reshape(size, -1)
        filled = self.filled.reshape(size, -1)
        amount[target.ravel(), flat] += np.broadcast_to(value, shape).ravel()
        filled[target.ravel(), flat] = True
        self.step += 1
        slot = self.step % size
        self.output = np.where(self.filled[slot], self.amount[slot], missing)[()]
        self.amount[slot], self.filled[slot] = 0.0, False
        return self

    def _start(self, shape, lag) -> None:
        size = int(max(np.max(self.first), np.max(lag))) + 1
        self.amount = np.zeros((size,) + shape)
        self.filled = np.zeros((size,) + shape, dtype=bool)
        ahead = np.arange(size).reshape((size,) + (1,) * len(shape))
        initial = (ahead >= 1) & (ahead < np.broadcast_to(self.first, shape))
        self.amount[:] = np.where(initial, np.broadcast_to(self.initial, shape), 0.0)
        self.filled[:] = initial

    def _broadcast(self, shape) -> None:
        size = self.amount.shape[0]
        self.amount = np.broadcast_to(self.amount, (size,) + shape).copy()
        self.filled = np.broadcast_to(self.filled, (size,) + shape).copy()

    def _fit(self, needed: int) -> None:
        """Grow the ring to hold ``needed`` steps ahead, keeping each entry's step."""
        size = self.amount.shape[0]
        if needed <= size:
            return
        grown = max(needed, 2 * size)
        ahead = (self.step + np.arange(size))
        amount = np.zeros((grown,) + self.amount.shape[1:])
        filled = np.zeros((grown,) + self.amount.shape[1:], dtype=bool)
        amount[ahead % grown] = self.amount[ahead % size]
        filled[ahead % grown] = self.filled[ahead % size]
        self.amount, self.filled = amount, filled
