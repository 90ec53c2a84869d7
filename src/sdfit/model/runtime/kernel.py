"""The compiled kernel: a model's program as one C function, built once per machine.

:mod:`.kernel_source` writes the C source; :mod:`sdfit.native` compiles it with the
system's C compiler into a shared library cached in the user cache and loads it with
:mod:`ctypes`; here it is called with the batch split over threads (a ctypes call releases
the GIL).  The NumPy program of :mod:`.codegen` stays the reference and the fallback:
without a C compiler, with ``SDFIT_KERNEL=0``, or for a program or a call the kernel does
not handle (:func:`kernel_for` and :meth:`Kernel.run` return ``None``), it runs instead.

Why C and not Numba: a cached Numba kernel costs every process about 0.3 s to import
Numba and 0.4 s for its first dispatch (this machine), against 0.1 ms to load a shared
library; the generated C is also simpler to hold to NumPy's arithmetic (no fast-math, no
FMA contraction) and runs at about 1.4 ns per unit-step on the aging chain.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

import numpy as np

from ... import native
from ...exceptions import ModelError
from .kernel_source import LANES, KernelSource, KernelUnsupported, generate
from .program import CONTROLS, TIME_RPREC, _at_times, _every_saveper, _rounded, closure

if TYPE_CHECKING:
    from .program import BatchModel

#: ``SDFIT_KERNEL=0`` runs the NumPy program only (``SDFIT_NATIVE=0`` too).
ENABLED = os.environ.get("SDFIT_KERNEL", "1") != "0"
#: Batches smaller than this run on one thread (a thread hand-off costs more).
THREADED_FROM = 8 * LANES

#: Why the last program the kernel could not take runs on NumPy (for diagnostics).
last_fallback: str | None = None


class Kernel:
    """The compiled kernel of one model recording one tuple of identifiers."""

    def __init__(self, model: BatchModel, source: KernelSource, library: ctypes.CDLL):
        self.model, self.source = model, source
        self.function = library.sdfit_run
        self.function.restype = ctypes.c_int
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        self.function.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, i64, i64,
                                  ctypes.c_double, ptr, ptr]
        self.slots = {ident: k for k, ident in enumerate(source.overridable)}
        self.tables = {v.ident for v in model.variables.values() if v.kind == "lookup"}
        self._controls: dict[str, float] = {}
        self._depends = {ident: closure({ident}, model.assignments) for ident in CONTROLS}
        self._schedules: dict = {}

    def run(self, batch_size: int, overrides, stop_time=None, return_times=None):
        """As :meth:`BatchModel.execute`; ``None`` when this call needs the NumPy program
        (controls that differ between units, or values that are not one per unit)."""
        if not self.tables.isdisjoint(overrides):
            return None  # a lookup replaced by a table of values: the NumPy program's job
        controls = self.controls(overrides)
        if controls is None:
            return None
        # every overridden value is read in place (a column of the solver's parameters too):
        # one address and stride in values (0: one value for all units) per input of the
        # kernel, NULL for the model's own equation
        size = max(len(self.slots), 1)
        pointers, strides = np.zeros(size, dtype=np.uintp), np.zeros(size, dtype=np.int64)
        held = []
        for ident, value in overrides.items():
            k = self.slots.get(ident)
            if k is None:
                continue
            value = np.asarray(value)
            if (value.dtype != np.float64 or value.ndim > 1
                    or (value.ndim == 1 and value.strides[0] % 8)):
                try:
                    value = np.ascontiguousarray(value, dtype=float)
                except (TypeError, ValueError):  # not numbers: the NumPy program decides
                    return None
            if value.size not in (1, batch_size):
                return None
            held.append(value)
            pointers[k] = value.ctypes.data
            strides[k] = value.strides[0] // 8 if value.size > 1 else 0
        times, saved, stamps = self.schedule(controls, stop_time, return_times)
        if not len(stamps):
            raise ModelError(f"Model '{self.model.name}' recorded no time step; check the "
                             "times.")
        record = self.source.record
        out = np.empty((len(record), len(stamps), batch_size))
        args = (batch_size, pointers.ctypes.data, strides.ctypes.data, times.ctypes.data,
                saved.ctypes.data, len(times), len(stamps), controls["v_time_step"],
                self.source.tables.ctypes.data, out.ctypes.data)
        status = _call(self.function, batch_size, args)
        if status:
            raise MemoryError("The compiled kernel could not allocate its buffers.")
        return stamps, [out[k].T for k in range(len(record))]

    def entry(self, overrides, per_row: set[str], stop_time, return_times):
        """What compiled code needs to call this kernel itself, for runs that override
        ``overrides`` (one value for all rows) and the identifiers ``per_row``: the
        function's address, then the arguments that follow its inputs (times, saving slots,
        step and saved counts, TIME STEP, tables); None when :meth:`run` would not take
        such calls (a lookup replaced, controls that differ between rows)."""
        if not self.tables.isdisjoint({*overrides, *per_row}):
            return None
        if any(not self._depends[c].isdisjoint(per_row) for c in CONTROLS):
            return None
        controls = self.controls(overrides)
        if controls is None:
            return None
        times, saved, stamps = self.schedule(controls, stop_time, return_times)
        if not len(stamps):
            return None
        address = ctypes.cast(self.function, ctypes.c_void_p).value
        return (address, times, saved, len(times), len(stamps), controls["v_time_step"],
                self.source.tables)

    def controls(self, overrides) -> dict[str, float] | None:
        """INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER under ``overrides``, or None when
        one differs between units."""
        values = {}
        for ident in CONTROLS:
            if ident in overrides:
                value = overrides[ident]
            elif self._depends[ident].isdisjoint(overrides):
                if ident not in self._controls:
                    self._controls[ident] = self.model.control(ident)
                value = self._controls[ident]
            else:  # depends on an overridden constant: evaluate as the NumPy program does
                value = self.model._program(()).statics(overrides)[ident]
            value = np.asarray(value, dtype=float)
            if value.size != 1 and not np.all(value == value.flat[0]):
                return None
            values[ident] = float(value.flat[0])
        return values

    def schedule(self, controls: dict[str, float], stop_time, return_times):
        """Times of the Euler steps and the saving slot of each (-1: not saved), exactly as
        the NumPy program's loop computes them."""
        key = (tuple(controls.values()), stop_time,
               None if return_times is None else tuple(np.atleast_1d(return_times)))
        if key not in self._schedules:
            due = _every_saveper if return_times is None else _at_times(return_times)
            t0, dt = controls["v_initial_time"], controls["v_time_step"]
            end = controls["v_final_time"] if stop_time is None else stop_time
            times, saved, stamps = [], [], []
            time = t0
            while True:
                times.append(time)
                saved.append(len(stamps) if due(time, t0, dt, controls["v_saveper"]) else -1)
                if saved[-1] >= 0:
                    stamps.append((time, dt))
                if not time + dt * TIME_RPREC < end:
                    break
                time = time + dt
            self._schedules[key] = (np.array(times), np.array(saved, dtype=np.int64),
                                    _rounded(stamps) if stamps else np.array([]))
        return self._schedules[key]


def kernel_for(model: BatchModel, record: tuple[str, ...]) -> Kernel | None:
    """The compiled kernel of ``model`` recording ``record``, built or loaded from the
    cache; ``None`` when the NumPy program must run."""
    global last_fallback
    if not ENABLED:
        return None
    try:
        source = generate(model, record)
    except KernelUnsupported as reason:
        last_fallback = f"{model.name}: {reason}"
        return None
    library = native.library(source.text)
    if library is None:
        last_fallback = f"{model.name}: {native.last_failure}"
        return None
    return Kernel(model, source, library)


def _call(function, batch_size: int, args) -> int:
    """Run the kernel over the batch, split in whole blocks over threads when it pays."""
    threads = native.threads()
    if threads == 1 or batch_size < THREADED_FROM:
        return function(0, batch_size, *args)
    blocks = -(-batch_size // LANES)
    bounds = [min(batch_size, LANES * (blocks * t // threads)) for t in range(threads + 1)]
    return max(native.pool().map(lambda t: function(bounds[t], bounds[t + 1], *args),
                                 range(threads)))
