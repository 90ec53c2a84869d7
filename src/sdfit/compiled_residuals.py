"""An objective's residuals as a C function, so that the solver's whole loop runs compiled.

:class:`Residuals` is what the fitter hands the solver: called from Python it is
:meth:`Objective.residuals <sdfit.objective.Objective.residuals>`; its ``native``
attribute, when the problem allows, is the address of ``sdfit_residuals``
(``compiled_residuals.c``) and of the table of inputs it reads: the model's compiled
kernel, how each of the kernel's inputs is set per row (a parameter column, a unit's
initial stock or input, one value for all), and the observation slots.  The arithmetic
is the NumPy path's, so a unit's fit is the same number for number either way.

Problems the C function does not cover keep ``native`` None and the solver calls Python:
likelihoods other than gaussian, robust losses, ridge penalties, per-unit input tables,
subscripts, the PySD engine, random functions, Runge–Kutta, and controls set per unit.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import numpy as np

from . import native
from .objective import Objective
from .resolved import Resolved

OWN, SHARED, PARAMETER, UNIT = range(4)  # how a kernel input is set (compiled_residuals.c)

_i64p, _f64p = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double)


class _Problem(ctypes.Structure):
    _fields_ = [("run", ctypes.c_void_p), ("times", _f64p), ("saved", _i64p),
                ("nsteps", ctypes.c_int64), ("nsaved", ctypes.c_int64),
                ("dt", ctypes.c_double), ("tab", _f64p), ("nrecord", ctypes.c_int64),
                ("ninputs", ctypes.c_int64), ("kind", _i64p), ("column", _i64p),
                ("base", ctypes.POINTER(_f64p)), ("width", _i64p), ("unit", _i64p),
                ("m", ctypes.c_int64), ("p", ctypes.c_int64), ("record_of", _i64p),
                ("var", _i64p), ("lo", _i64p), ("hi", _i64p), ("fraction", _f64p),
                ("sqrt_w", _f64p), ("value", _f64p), ("mask", ctypes.c_void_p),
                ("interpolate", ctypes.c_int64)]


class Residuals:
    """The residuals of solver rows (unit ``units[row]``): ``fun(x, rows)``."""

    def __init__(self, objective: Objective, units: np.ndarray, alpha=None):
        self.objective, self.units, self.alpha = objective, units, alpha
        self.native = _compile(objective, units) if alpha is None else None

    def __call__(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        alpha = None if self.alpha is None else self.alpha[rows]
        return self.objective.residuals(x, self.units[rows], alpha)


class NativeResiduals:
    """``sdfit_residuals`` and its table of inputs; holds every array the table points to."""

    def __init__(self, function: int, problem: _Problem, held: list):
        self.function, self.problem, self._held = function, problem, held
        self.n_residuals = problem.m

    @property
    def context(self) -> int:
        return ctypes.addressof(self.problem)


def covers(resolved: Resolved) -> bool:
    """Whether the problem's residuals can be the C function (when the model's kernel
    runs and a compiler is at hand): its layout alone decides."""
    obs, p = resolved.observations, resolved.parameters
    if (obs.likelihood != "gaussian" or obs.loss != "linear" or p.penalised.size
            or resolved.inputs.series or resolved.stocks.shapes or resolved.defaults
            or resolved.pooling is not None or not hasattr(resolved.model, "compiled")):
        return False
    return not any(s.index for s in (*p.slots, *resolved.stocks.slots, *obs.slots,
                                     *resolved.inputs.constants, *(s for s, _ in p.fixed)))


def prepare() -> bool:
    """Build (or load) the C function now; True when it can be had."""
    return _library() is not None


def _compile(objective: Objective, units: np.ndarray) -> NativeResiduals | None:
    resolved, data = objective.resolved, objective.data
    obs, p = resolved.observations, resolved.parameters
    if not covers(resolved):
        return None
    kernel = resolved.model.compiled(objective.record, resolved.method)
    library = _library()
    if kernel is None or library is None:
        return None
    # each overridden identifier as Objective.simulate sets it
    shared: dict[str, object] = {"v_initial_time": resolved.start_time}
    shared |= {slot.ident: value for slot, value in p.fixed}
    per_row: dict[str, tuple[int, np.ndarray | None, int]] = {}
    for k, slot in enumerate(p.slots):
        per_row[slot.ident] = (PARAMETER, None, k)
    for table, slots in ((data.initial, resolved.stocks.slots),
                         (data.constants, resolved.inputs.constants)):
        for k, slot in enumerate(slots):
            per_row[slot.ident] = (UNIT, table, k)
    for ident in per_row:
        shared.pop(ident, None)
    entry = kernel.entry(shared, set(per_row), float(objective.times[-1]), objective.times)
    if entry is None:
        return None
    address, times, saved, nsteps, nsaved, dt, tables = entry

    held: list = []

    def keep(array, dtype) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=dtype)
        held.append(array)
        return array

    def pointer(array, kind=_f64p):
        return ctypes.cast(array.ctypes.data, kind)

    inputs = kernel.source.overridable
    kind, column, width = (keep(np.zeros(len(inputs)), np.int64) for _ in range(3))
    base = (_f64p * max(len(inputs), 1))()
    for k, ident in enumerate(inputs):
        if ident in per_row:
            kind[k], table, column[k] = per_row[ident]
            if table is not None:
                table = keep(table, float)
                base[k], width[k] = pointer(table), table.shape[1]
        elif ident in shared:
            value = keep(np.atleast_1d(shared[ident]), float)
            if value.size != 1:
                return None
            kind[k], base[k] = SHARED, pointer(value)
    record_of = keep([objective.record.index(s.ident) for s in obs.slots], np.int64)
    i64 = (keep(units, np.int64), record_of, keep(data.obs_var, np.int64),
           keep(objective.lo, np.int64), keep(objective.hi, np.int64))
    f64 = (keep(objective.fraction, float), keep(objective.sqrt_w, float),
           keep(data.obs_value, float))
    problem = _Problem(
        address, pointer(keep(times, float)), pointer(keep(saved, np.int64), _i64p), nsteps,
        nsaved, dt, pointer(keep(tables, float)), len(objective.record), len(inputs),
        pointer(kind, _i64p), pointer(column, _i64p), base, pointer(width, _i64p),
        pointer(i64[0], _i64p), data.obs_mask.shape[1], len(p.slots),
        *(pointer(a, _i64p) for a in i64[1:]), *(pointer(a) for a in f64),
        keep(data.obs_mask, np.bool_).ctypes.data, int(objective.interpolate))
    held.append(base)
    return NativeResiduals(ctypes.cast(library.sdfit_residuals, ctypes.c_void_p).value,
                           problem, held)


@cache
def _library():
    return native.library((Path(__file__).parent / "compiled_residuals.c").read_text())
