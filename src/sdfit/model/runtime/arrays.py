"""Run-time helpers of subscripted programs (imported there as ``V``).

Values are scalars or arrays of shape ``(B or 1, *dims)`` (see :mod:`..compiler.subscripts`):
the compiler has already aligned the axes of every operand, so these helpers
only broadcast, assemble and apply the array built-ins along named axes.  The
vector built-ins follow ``pysd.py_backend.functions`` (which applies them to
one unit's xarray), here over the whole batch at once.
"""

from __future__ import annotations

import numpy as np


# -- shapes ---------------------------------------------------------------------------------
def lift(x, k: int):
    """A value without subscripts, ready to meet an array of ``k`` subscript axes: a
    per-unit array (B,) becomes (B, 1, ..., 1); scalars stay scalars."""
    if isinstance(x, np.ndarray) and x.ndim:
        return x.reshape(x.shape + (1,) * k)
    return x


def fill(x, shape: tuple[int, ...]):
    """``x`` (aligned, possibly with axes of length 1) broadcast to ``(B or 1, *shape)``."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return np.full((1,) + shape, x)
    if x.ndim == 1:
        x = x.reshape(x.shape + (1,) * len(shape))
    return np.broadcast_to(x, x.shape[:1] + shape)


def assemble(shape: tuple[int, ...], pieces, covered: bool) -> np.ndarray:
    """A variable defined piece by piece, each piece a block of its array: ``pieces`` are
    (value, index of the block); undefined elements (unless ``covered``) are NaN, as
    PySD's merge leaves them."""
    batch = 1
    for value, _ in pieces:
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] > batch:
            batch = value.shape[0]
    out = np.empty((batch,) + shape) if covered else np.full((batch,) + shape, np.nan)
    for value, index in pieces:
        out[index] = value
    return out


def assemble_flat(shape: tuple[int, ...], pieces) -> np.ndarray:
    """A variable defined piece by piece, in general: ``pieces`` are (value, block shape,
    flat positions in the variable, flat positions in the block); undefined elements are
    NaN."""
    blocks = [fill(value, block) for value, block, _, _ in pieces]
    batch = max(b.shape[0] for b in blocks)
    out = np.full((batch, int(np.prod(shape))), np.nan)
    for block, (_, _, target, source) in zip(blocks, pieces, strict=True):
        out[:, target] = block.reshape(block.shape[0], -1)[:, source]
    return out.reshape((batch,) + shape)


# -- lookups with one table per element --------------------------------------------------------
def lookups(x, xs, ys, mode: str = "interpolate"):
    """Look ``x`` up in per-element tables ``xs``, ``ys`` (shape ``(1, *dims, L)``, padded
    with +inf and the last y), as :func:`sdfit.model.runtime.functions.lookup` does per table."""
    x = np.asarray(x, dtype=float)
    shape = np.broadcast_shapes(x.shape, xs.shape[:-1])
    x = np.broadcast_to(x, shape)[..., None]
    xs = np.broadcast_to(xs, shape + xs.shape[-1:])
    ys = np.broadcast_to(ys, shape + ys.shape[-1:])
    last = xs.shape[-1] - 1
    n = np.sum(xs <= x, axis=-1, keepdims=True)
    lo, hi = np.clip(n - 1, 0, last), np.clip(n, 0, last)
    x0, x1 = np.take_along_axis(xs, lo, -1), np.take_along_axis(xs, hi, -1)
    y0, y1 = np.take_along_axis(ys, lo, -1), np.take_along_axis(ys, hi, -1)
    if mode == "hold_backward":
        return np.where(n == 0, ys[..., :1], y0)[..., 0]
    inside = (x1 > x0) & np.isfinite(x1) & (n > 0)
    y = np.where(inside, y0 + (y1 - y0) * (x - x0) / np.where(inside, x1 - x0, 1.0), y0)
    if mode == "extrapolate":
        count = np.sum(np.isfinite(xs), axis=-1, keepdims=True)
        a, b = np.take_along_axis(xs, count - 2, -1), np.take_along_axis(xs, count - 1, -1)
        ya, yb = np.take_along_axis(ys, count - 2, -1), np.take_along_axis(ys, count - 1, -1)
        above = yb + (yb - ya) / (b - a) * (x - b)
        below = ys[..., :1] + (ys[..., 1:2] - ys[..., :1]) / (xs[..., 1:2] - xs[..., :1]) * (
            x - xs[..., :1])
        y = np.where(x < xs[..., :1], below, np.where(x > b, above, y))
    return y[..., 0]


# -- data series -------------------------------------------------------------------------------
def data(time: float, times: np.ndarray, values: np.ndarray, mode: str):
    """A data variable at ``time`` from its series (``values[k]`` at ``times[k]``), as
    PySD's ``Data.__call__``: the value at a time of the series, else NaN (``raw``), the
    end values outside the series, else interpolated, the next value (``look_forward``)
    or the previous one (``hold_backward``)."""
    k = int(np.searchsorted(times, time))
    if k < len(times) and times[k] == time:
        return values[k]
    if mode == "raw":
        return np.full(values.shape[1:], np.nan) if values.ndim > 1 else np.nan
    if k == len(times):
        return values[-1]
    if k == 0:
        return values[0]
    if mode == "look_forward":
        return values[k]
    if mode == "hold_backward":
        return values[k - 1]
    weight = (time - times[k - 1]) / (times[k] - times[k - 1])
    return values[k - 1] + weight * (values[k] - values[k - 1])


# -- vector built-ins ----------------------------------------------------------------------------
def vector_select(selection, expression, axis, missing, numerical_action, error_action):
    """VECTOR SELECT over the axes ``axis`` (PySD's ``vector_select``); the actions are
    the same for every unit."""
    numerical_action = int(np.ravel(numerical_action)[0])
    error_action = int(np.ravel(error_action)[0])
    selection, expression = np.broadcast_arrays(np.asarray(selection, float),
                                                np.asarray(expression, float))
    zeros = np.all(selection == 0, axis=axis)
    if np.any(zeros) and error_action in (1, 3):
        raise FloatingPointError("All the values of selection_array are 0...")
    if np.any(np.sum(selection != 0, axis=axis) > 1) and error_action in (2, 3):
        raise FloatingPointError("More than one non-zero values in selection_array...")
    if numerical_action in range(5):
        array = selection * expression
    elif numerical_action == 5:
        array = expression ** selection
    elif numerical_action in range(6, 11):
        array = expression
    else:
        raise ValueError(f"Invalid argument value 'numerical_action={numerical_action}'.")
    array = np.where(selection == 0, np.nan, array)
    reduce = {0: np.nansum, 6: np.nansum, 1: np.nanprod, 5: np.nanprod, 7: np.nanprod,
              2: np.nanmin, 8: np.nanmin, 3: np.nanmax, 9: np.nanmax,
              4: np.nanmean, 10: np.nanmean}[numerical_action]
    with np.errstate(all="ignore"):
        out = reduce(array, axis=axis) if not np.all(zeros) else np.zeros(zeros.shape)
    return np.where(zeros, missing, out)


def vector_sort_order(vector, direction):
    """VECTOR SORT ORDER along the last axis: positions (from 0, as PySD) of the sorted
    entries, smallest first when ``direction`` > 0, largest first otherwise."""
    order = np.argsort(vector, axis=-1, kind="stable")
    return np.where(np.asarray(direction)[..., None] > 0 if np.ndim(direction) else
                    direction > 0, order, np.flip(order, axis=-1))


def vector_rank(vector, direction):
    """VECTOR RANK along the last axis (1 for the first in the sort order)."""
    return np.argsort(vector_sort_order(vector, direction), axis=-1, kind="stable") + 1.0


def vector_reorder(vector, order):
    """VECTOR REORDER: the entries of ``vector`` in the order given by ``order``."""
    vector, order = np.broadcast_arrays(vector, np.asarray(order).astype(int))
    return np.take_along_axis(vector, order, axis=-1)


def vector_elm_map(vector, base, offset):
    """VECTOR ELM MAP: the elements of ``vector`` (B or 1, *dims) at flat positions
    ``base + offset`` (truncated), NaN outside the vector."""
    flat = np.asarray(vector, dtype=float)
    flat = flat.reshape(flat.shape[0], -1)
    position = np.trunc(np.asarray(base + offset, dtype=float))
    if position.ndim == 0:
        position = position.reshape(1)
    batch = max(flat.shape[0], position.shape[0])
    position = np.broadcast_to(position, (batch,) + position.shape[1:])
    inside = (position >= 0) & (position < flat.shape[1])
    index = np.where(inside, position, 0).astype(int)
    rows = 0 if flat.shape[0] == 1 else np.arange(batch).reshape((batch,) + (1,) * (
        index.ndim - 1))
    return np.where(inside, flat[rows, index], np.nan)


def invert_matrix(matrix):
    """INVERT MATRIX of the last two axes, for every unit."""
    return np.linalg.inv(matrix)


# -- allocation: PySD's one-vector algorithms, over every other axis ------------------------------
def allocate_available(request, pp, avail):
    """ALLOCATE AVAILABLE (PySD's algorithm, applied to each vector of the batch)."""
    from pysd.py_backend.allocation import _allocate_available_1d

    request = np.asarray(request, float)
    pp = np.asarray(pp, float)
    avail = np.asarray(avail, float)
    shape = np.broadcast_shapes(request.shape[:-1], pp.shape[:-2], avail.shape)
    request = np.broadcast_to(request, shape + request.shape[-1:])
    pp = np.broadcast_to(pp, shape + pp.shape[-2:])
    avail = np.broadcast_to(avail, shape)
    out = np.empty(request.shape)
    for index in np.ndindex(*shape):
        out[index] = _allocate_available_1d(request[index], pp[index], float(avail[index]))
    return out


def allocate_by_priority(request, priority, width, supply):
    """ALLOCATE BY PRIORITY (PySD's algorithm, applied to each vector of the batch)."""
    from pysd.py_backend.allocation import _allocate_by_priority_1d

    request, priority = np.broadcast_arrays(np.asarray(request, float),
                                            np.asarray(priority, float))
    shape = request.shape[:-1]
    width = np.broadcast_to(np.asarray(width, float), shape)
    supply = np.broadcast_to(np.asarray(supply, float), shape)
    out = np.empty(request.shape)
    for index in np.ndindex(*shape):
        out[index] = _allocate_by_priority_1d(request[index], priority[index],
                                              float(width[index]), float(supply[index]))
    return out
