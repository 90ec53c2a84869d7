"""Vectorised Vensim/XMILE built-ins used by generated programs (imported there as ``F``).

Each function works on scalars and on arrays with a leading batch axis alike,
and mirrors ``pysd.py_backend.functions`` so that results agree: PySD applies
them to one unit's floats, these to every unit at once.  Scalars stay scalars
(the fast path of models whose inputs are the same for every unit), but NumPy
scalars (:func:`real`): their arithmetic gives inf or NaN where Python's raises.
"""

from __future__ import annotations

import numpy as np

from .pipelines import SMALL_VENSIM, MaterialDelay, compact_order, steps


def real(x):
    """A Python float or bool as a NumPy float (arrays, ints such as stage counts and
    other objects unchanged): the program's scalars divide by zero into inf, not into
    ZeroDivisionError."""
    return np.float64(x) if type(x) in (float, bool) else x


def _where(condition, value_true, value_false):
    if np.ndim(condition) == 0:
        return real(value_true if condition else value_false)
    return np.where(condition, value_true, value_false)


def if_then_else(condition, value_true, value_false):
    """IF THEN ELSE, element-wise over the batch."""
    return _where(condition, value_true, value_false)


def xidz(numerator, denominator, value_if_zero):
    """XIDZ: ``numerator / denominator``, or ``value_if_zero`` where |denominator| < 1e-6."""
    if np.ndim(denominator) == 0:
        return real(value_if_zero) if abs(denominator) < SMALL_VENSIM else \
            real(numerator) / denominator
    zero = np.abs(denominator) < SMALL_VENSIM
    return np.where(zero, value_if_zero, numerator / np.where(zero, 1.0, denominator))


def zidz(numerator, denominator):
    """ZIDZ: XIDZ with 0 as the value for a zero denominator."""
    return xidz(numerator, denominator, 0.0)


def integer(x):
    """INTEGER: the integer part (truncation towards zero, as Python's ``int``)."""
    return np.trunc(x)


def quantum(a, b):
    """QUANTUM: ``b * INTEGER(a / b)``, or ``a`` where b < 1e-6."""
    if np.ndim(b) == 0:
        return real(a) if b < SMALL_VENSIM else b * np.trunc(real(a) / b)
    small = b < SMALL_VENSIM
    return np.where(small, a, b * np.trunc(a / np.where(small, 1.0, b)))


def modulo(x, m):
    """MODULO as Vensim computes it: ``x - QUANTUM(x, m)`` (in (-m, 0] for negative x)."""
    return x - quantum(x, m)


def gamma_ln(x):
    """GAMMA LN: the logarithm of the gamma function."""
    from scipy.special import gammaln

    return gammaln(x)


def log(x, base):
    """LOG(x, base)."""
    return np.log(x) / np.log(base)


# -- time-driven inputs -----------------------------------------------------------------
def step(time, time_step, height, start):
    """STEP: ``height`` from ``start`` on (half a TIME STEP early, as PySD)."""
    return height * (time + time_step / 2 > start)


def ramp(time, slope, start, finish=None):
    """RAMP: grows by ``slope`` from ``start`` (until ``finish`` when given)."""
    final = time if finish is None else np.minimum(finish, time)
    return (time + SMALL_VENSIM > start) * slope * (final - start)


def pulse(time, time_step, start, width=None, magnitude=None):
    """A single pulse (Vensim PULSE; XMILE PULSE when ``magnitude`` is given)."""
    width = 0.5 * time_step if width is None else width
    height = 1.0 if magnitude is None else magnitude / time_step
    on = (start - SMALL_VENSIM <= time) & (time < start + width)
    return _where(on, height, 0.0)


def pulse_train(time, time_step, start, interval, width=None, end=None, magnitude=None):
    """Repeated pulses (Vensim PULSE TRAIN, the last one starting at ``end`` at the latest;
    XMILE PULSE with an interval)."""
    width = 0.5 * time_step if width is None else width
    height = 1.0 if magnitude is None else magnitude / time_step
    single = pulse(time, time_step, start, width, magnitude)
    # a pulse starts at the end time itself, as Vensim's output shows (PySD: before it)
    within = start <= time if end is None else (start <= time) & (time <= end)
    phase = np.mod(time - start + SMALL_VENSIM, _where(interval == 0, 1.0, interval))
    repeated = _where(within & (phase < width), height, 0.0)
    return _where(interval == 0, single, repeated)


# -- lookups ------------------------------------------------------------------------------
def look(table, x):
    """``table(x)``: a per-unit table (:class:`~.inputs.UnitTable`) read at ``x``."""
    return table(x)


def lookup(x, xs, ys, mode="interpolate", jumps=False):
    """Look ``x`` up in the table (xs, ys) as PySD's ``HardcodedLookups`` does.

    ``mode`` is ``"interpolate"`` (linear, holding the end values outside the
    table), ``"extrapolate"`` (linear beyond the ends too) or
    ``"hold_backward"`` (the value of the last point at or below ``x``) or
    ``"look_forward"`` (of the first point at or above it).  An x given
    twice is a jump (Vensim's semantics): below it the table approaches the first
    point's y, at and above it the last one's (``jumps``: the table has such x).
    """
    if mode == "hold_backward":
        index = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 1)
        return ys[index]
    if mode == "look_forward":  # Vensim's LOOKUP FORWARD: the next point at or above x
        return ys[np.clip(np.searchsorted(xs, x, side="left"), 0, len(xs) - 1)]
    y = _interp_jumps(x, xs, ys) if jumps else np.interp(x, xs, ys)
    if mode == "extrapolate" and len(xs) > 1:
        below = ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0])
        above = ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1])
        y = _where(x < xs[0], below, _where(x > xs[-1], above, y))
    return y


def _interp_jumps(x, xs, ys):
    """Linear interpolation in a table whose x values repeat (non-decreasing): the
    segment of ``x`` is the one starting at the last point at or below it."""
    x = np.asarray(x, dtype=float)
    last = len(xs) - 1
    lo = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, last)
    hi = np.minimum(lo + 1, last)
    width = xs[hi] - xs[lo]
    inside = (width > 0) & (x >= xs[0])
    weight = np.where(inside, (x - xs[lo]) / np.where(inside, width, 1.0), 0.0)
    y = ys[lo] + weight * (ys[hi] - ys[lo])
    return np.where(x < xs[0], ys[0], y)[()]


# -- stateful structures --------------------------------------------------------------------
# Multi-stage structures (DELAY, DELAY N, SMOOTH N) keep their stages on a leading
# axis: shape (stages, *value_shape).  Their order is fixed at the initial time and
# may differ between units; stages beyond a unit's order run but are never read.

def delay_order(order, time_step, delay_time):
    """PySD's DELAY order: truncated to an integer, then lowered while
    ``order * TIME STEP > delay time`` (a delay shorter than its stages)."""
    order = np.trunc(order)
    delay_time = np.asarray(delay_time)
    if delay_time.ndim > 1:  # one order per unit, for its shortest delay over subscripts
        delay_time = delay_time.min(axis=tuple(range(1, delay_time.ndim)), keepdims=True)
    too_long = (order * time_step > delay_time) & (order > 0)
    while np.any(too_long):
        order = np.where(too_long, order - 1, order)
        too_long = (order * time_step > delay_time) & (order > 0)
    return compact_order(order)


def smooth_order(order):
    """SMOOTH N's order, fixed at the initial time and truncated to an integer (as DELAY N's;
    PySD itself cannot build a SMOOTH N of non-integer order)."""
    return compact_order(np.trunc(order))


def stages(value, order):
    """Initial stages: ``value`` repeated ``max(order)`` times on a new leading axis."""
    shape = np.broadcast_shapes(np.shape(value), np.shape(order))  # per-unit orders too
    return np.broadcast_to(value, (int(np.max(order)),) + shape).astype(float)


def _lift(stages_, *values):
    """``stages_`` with singleton axes after the stage axis so that its value part has at
    least the rank of every value: NumPy then aligns values with values, never a value's
    batch axis with the stage axis (stages start scalar when the initial value is)."""
    missing = max([getattr(v, "ndim", 0) for v in values]) - (stages_.ndim - 1)
    if missing <= 0:
        return stages_
    return stages_.reshape(stages_.shape[:1] + (1,) * missing + stages_.shape[1:])


def _shift_in(first, stages_):
    """(first, stages_[0], ..., stages_[-2]): stages moved one place down the pipeline."""
    shape = stages_.shape[1:]
    first_shape = getattr(first, "shape", ())
    if first_shape and first_shape != shape:  # stages started with fewer units than now
        shape = np.broadcast_shapes(first_shape, shape)
    out = np.empty((len(stages_),) + shape)
    out[0] = first
    out[1:] = stages_[:-1]
    return out


def last_stage(stages_, order):
    """Each unit's last active stage (NaN where the order is 0)."""
    if np.ndim(order) == 0:
        return stages_[order - 1] if order > 0 else np.full(stages_.shape[1:], np.nan)
    stages_ = _lift(stages_, order)
    index = np.broadcast_to(np.maximum(order, 1) - 1, stages_.shape[1:])
    chosen = np.take_along_axis(stages_, index[None], axis=0)[0]
    return np.where(order > 0, chosen, np.nan)


def advance(stages_, rate, h):
    """Stages moved ``h`` along ``rate`` (stages that started with fewer value axes than
    the rate get them after the stage axis)."""
    stages_ = np.asarray(stages_)
    missing = np.ndim(rate) - stages_.ndim
    if missing > 0:
        stages_ = stages_.reshape(stages_.shape[:1] + (1,) * missing + stages_.shape[1:])
    return stages_ + rate * h


def delay_rate(stages_, delay_input, delay_time, order):
    """DELAY's stages' rate of change (each holds its content times the delay time)."""
    stages_ = _lift(stages_, delay_input, delay_time, order)
    outflows = stages_ / delay_time
    return (_shift_in(delay_input, outflows) - outflows) * order


def delay_step(stages_, delay_input, delay_time, order, dt):
    """DELAY's stages one Euler step on (PySD's arithmetic)."""
    return advance(stages_, delay_rate(stages_, delay_input, delay_time, order), dt)


def delay_n_step(stages_, times, delay_input, delay_time, order, dt):
    """DELAY N's stages one step on: each stage drains with the delay time it entered
    with (``times``: the delay times of the last steps, newest first)."""
    stages_ = _lift(stages_, delay_input, delay_time, order, times[0])
    outflows = stages_ / _lift(_shift_in(delay_time, times), stages_[0])
    return stages_ + (_shift_in(delay_input, outflows) - outflows) * order * dt


def shift_in(first, stages_):
    """DELAY N's record of delay times, moved one stage on."""
    return _shift_in(first, stages_)


def smooth_rate(stages_, smooth_input, smooth_time, order):
    """SMOOTH N's stages' rate of change."""
    stages_ = _lift(stages_, smooth_input, smooth_time, order)
    return (_shift_in(smooth_input, stages_) - stages_) * order / smooth_time


def smooth_step(stages_, smooth_input, smooth_time, order, dt):
    """SMOOTH N's stages one Euler step on (PySD's arithmetic)."""
    return advance(stages_, smooth_rate(stages_, smooth_input, smooth_time, order), dt)


def restrict(value, low, high, quantum, special, threshold):
    """Vensim's SINTEG restrictions of a value (each bound NaN when :NA:): a multiple of
    ``quantum`` (the nearest), ``special`` when within ``threshold`` of it, then within
    [low, high]."""
    value = np.asarray(value, dtype=float)
    if not np.isnan(quantum) and quantum > 0:
        value = quantum * np.round(value / quantum)
    if not (np.isnan(special) or np.isnan(threshold)):
        value = np.where(np.abs(value - special) < threshold, special, value)
    if not np.isnan(low):
        value = np.maximum(value, low)
    if not np.isnan(high):
        value = np.minimum(value, high)
    return value[()]


class FixedDelay:
    """DELAY FIXED's pipeline: the input of ``order`` steps ago, the initial value before.

    ``order = round(max(delay time / TIME STEP, 1))``, fixed at the initial time
    (per unit).  The pipeline is a ring buffer of past inputs with the batch
    behind its leading axis.
    """

    def __init__(self, initial, delay_time, time_step):
        self.order = compact_order(steps(delay_time, time_step))
        self.length = int(np.max(self.order))
        self.initial = initial
        self.output = initial
        self.buffer = None
        self.input_shape = None
        self.step = 0

    def push(self, value) -> FixedDelay:
        """Record this step's input and move the output on one step."""
        if np.shape(value) != self.input_shape:
            self._reshape(value)
        self.buffer[self.step % self.length] = value
        self.step += 1
        lag = self.step - self.order  # the step whose input comes out now
        if np.ndim(self.order) == 0:  # a copy: the slot is written again next step
            self.output = self.buffer[lag % self.length].copy() if lag >= 0 else self.initial
        else:
            index = np.broadcast_to(lag % self.length, self.buffer.shape[1:])
            past = np.take_along_axis(self.buffer, index[None], axis=0)[0]
            self.output = np.where(lag >= 0, past, self.initial)
        return self

    def _reshape(self, value) -> None:
        """Hold values of the input's shape (broadcast with the initial value's, the
        order's and what the pipeline already holds)."""
        self.input_shape = np.shape(value)
        held = () if self.buffer is None else self.buffer.shape[1:]
        shape = np.broadcast_shapes(self.input_shape, np.shape(self.initial),
                                    np.shape(self.order), held)
        if self.buffer is None or shape != held:
            grown = np.empty((self.length,) + shape)
            if self.buffer is not None:  # a scalar pipeline meets per-unit values
                grown[:] = self.buffer.reshape(self.buffer.shape + (1,) * (
                    grown.ndim - self.buffer.ndim))
            self.buffer = grown


def material_delay(initial, delay_time, time_step) -> MaterialDelay:
    """DELAY MATERIAL's pipeline (:class:`~.pipelines.MaterialDelay`)."""
    return MaterialDelay(initial, delay_time, time_step)


# -- random numbers -----------------------------------------------------------------------------
#: The draws a program may ask of its :class:`~.noise.Noise`.
DISTRIBUTIONS = frozenset({"uniform", "normal", "exponential", "gamma", "beta", "weibull",
                           "lognormal", "poisson", "binomial", "negative_binomial",
                           "triangular"})


def draw(noise, distribution: str, site: int, shape: tuple, *parameters):
    """Random numbers of one call of a random function at the current step."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"no distribution {distribution!r}")
    return getattr(noise, distribution)(site, shape, *parameters)


def tick(noise) -> None:
    """The random numbers of the next step from now on."""
    noise.step += 1
