"""External data read at compile time with PySD's own readers: GET XLS / GET DIRECT
CONSTANTS, DATA and LOOKUPS, and data variables (``name := ...`` read from the model's
data files, PySD's ``TabData``).

PySD's ``ExtConstant``, ``ExtData``, ``ExtLookup`` and ``TabData`` read the
files into xarrays once; their values become constant arrays of the program
(``A``): constants as they are, lookups as tables, and data as a time series
that ``V.data`` interpolates at each step the way PySD's ``Data.__call__``
does (``interpolate``, ``raw``, ``look_forward`` or ``hold_backward``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...exceptions import ModelError
from .subscripts import Expr

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

#: PySD's interpolation keywords of data variables (``:INTERPOLATE:`` ...).
DATA_MODES = ("interpolate", "raw", "look_forward", "hold_backward")


def _read(compiler, what: str, build):
    """``build()`` a PySD external object and return its data, as one sentence on error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            obj = build()
            obj.initialize()
        except Exception as error:  # PySD's readers raise many kinds
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise ModelError(f"Model file '{compiler.path}': reading {what} failed: "
                             f"{reason}") from error
    return obj.data


def _values(data, def_subs) -> np.ndarray:
    """An xarray of PySD (or a float) as an array of the component's dims, leading axes
    (time, lookup points) kept first."""
    if not def_subs:
        return np.asarray(data, dtype=float)
    values = np.asarray(data.values, dtype=float)
    return values.reshape(values.shape[:values.ndim - _rank(data, def_subs)]
                          + tuple(len(c) for c in def_subs.values()))


def _rank(data, def_subs) -> int:
    return sum(1 for d in data.dims if d not in ("time", "lookup_dim"))


def _final_coords(em: Emitter) -> dict:
    """The component's coordinates keyed by the component's range names (PySD keys them
    by the variable's; the order is the same)."""
    return {d: list(c) for d, c in em.def_subs.items()}


def constants(em: Emitter, node) -> Expr:
    """GET XLS / GET DIRECT CONSTANTS: a constant array of the component's dims."""
    from pysd.py_backend.external import ExtConstant

    coords = _final_coords(em)
    data = _read(em.compiler, f"the constants of '{em.variable}'", lambda: ExtConstant(
        node.file, node.tab, node.cell, coords, em.compiler.root, coords, em.variable))
    values = _values(data, coords)
    if not coords:
        return Expr(repr(float(values)))
    key = em.compiler.add_array(em.compiler.new_ident(em.variable, "constants"),
                                values[None])
    return Expr(f"A['{key}']", 0, dict(em.def_subs))


def lookup_points(compiler, var, component) -> tuple[np.ndarray, np.ndarray, str]:
    """GET XLS / GET DIRECT LOOKUPS: x values (L,) and y values (L, *component dims)."""
    from pysd.py_backend.external import ExtLookup

    node = component.ast
    coords = {d: list(c) for d, c in compiler.subscripts.coords(component.subscripts[0]).items()}
    data = _read(compiler, f"the lookup '{var.name}'", lambda: ExtLookup(
        node.file, node.tab, node.x_row_or_col, node.cell, coords, compiler.root, coords,
        var.name))
    xs = np.asarray(data.coords["lookup_dim"].values, dtype=float)
    return xs, _values(data, coords), "interpolate"


def lookups(em: Emitter, node) -> Expr:
    raise em.unsupported("GET LOOKUPS outside a lookup definition")


def data(em: Emitter, node) -> Expr:
    """GET XLS / GET DIRECT DATA and data variables: interpolated in time at each step."""
    component = em.component
    mode = (getattr(component, "keyword", None) or "interpolate").replace(" ", "_").lower()
    if mode not in DATA_MODES:
        raise em.unsupported(f"data of interpolation '{mode}'")
    coords = _final_coords(em)
    if type(node).__name__ == "DataStructure":
        series = _tab_data(em, coords, mode)
    else:
        from pysd.py_backend.external import ExtData

        series = _read(em.compiler, f"the data of '{em.variable}'", lambda: ExtData(
            node.file, node.tab, node.time_row_or_col, node.cell, mode, coords,
            em.compiler.root, coords, em.variable))
    times = np.asarray(series.coords["time"].values, dtype=float)
    values = _values(series, coords)
    if coords:
        values = values[:, None]
    key = em.compiler.new_ident(em.variable, "data")
    t_key = em.compiler.add_array(f"{key}_t", times)
    v_key = em.compiler.add_array(f"{key}_v", values)
    em.deps.add("time")
    return Expr(f"V.data(time, A['{t_key}'], A['{v_key}'], '{mode}')", 0, dict(em.def_subs))


def _tab_data(em: Emitter, coords: dict, mode: str):
    """A data variable read from the model's data files (PySD's ``TabData``)."""
    from pysd.py_backend.data import TabData

    files = em.compiler.data_files
    if not files:
        raise ModelError(f"The data variable '{em.variable}' of '{em.compiler.path}' needs "
                         "the data files that hold it; pass them as data_files.")
    name = em.variable
    tab = TabData(name, re.sub(r"\W", "_", name.lower()), coords, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tab.load_data([Path(f) for f in files])
        except ValueError as error:
            raise ModelError(f"The data variable '{em.variable}' of '{em.compiler.path}' is "
                             f"in none of the data files {', '.join(map(str, files))}."
                             ) from error
    return tab.data
