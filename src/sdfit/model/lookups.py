"""Lookup tables: their points become constant arrays of the program (``A`` in generated
code); calls become :func:`sdfit.model.functions.lookup`, as PySD's ``HardcodedLookups``.

Named tables (Vensim ``name((x, y), ...)``, XMILE graphical functions) honour
their interpolation type: ``interpolate`` holds the end values outside the
table, XMILE's ``extrapolate`` continues the end segments, ``discrete`` holds
the last point at or below x.  ``WITH LOOKUP`` and XMILE's inline graphical
functions interpolate and hold the ends, as PySD's ``np.interp`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pysd.translators.structures import abstract_expressions as ae

from ..exceptions import ModelError, UnsupportedFeatureError
from .program import Variable

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

MODES = ("interpolate", "extrapolate", "hold_backward")


def define(compiler, var: Variable, node, path: str) -> None:
    """Store the points of the named table ``var``."""
    if isinstance(node, ae.GetLookupsStructure):
        raise UnsupportedFeatureError("GET LOOKUPS", var.name, path)
    if not isinstance(node, ae.LookupsStructure):
        raise UnsupportedFeatureError(f"a lookup defined by {type(node).__name__}", var.name,
                                      path)
    if node.type not in MODES:
        raise UnsupportedFeatureError(f"lookups of type '{node.type}'", var.name, path)
    xs, ys = _points(node, var.name, path)
    compiler.tables[var.ident] = (
        compiler.add_array(f"{var.ident}_x", xs), compiler.add_array(f"{var.ident}_y", ys),
        node.type)


def call(em: Emitter, var: Variable, arguments) -> str:
    """``table(x)``."""
    if len(arguments) != 1:
        raise ModelError(f"The lookup '{var.name}' takes one argument; the equation of "
                         f"'{em.variable}' in '{em.compiler.path}' gives {len(arguments)}.")
    x = em.emit(arguments[0]).text
    xs, ys, mode = em.compiler.tables[var.ident]
    return f"F.lookup({x}, A['{xs}'], A['{ys}'], '{mode}')"


def inline(em: Emitter, node) -> str:
    """``WITH LOOKUP(x, ((x1, y1), ...))`` and XMILE's inline graphical functions."""
    xs, ys = _points(node.lookups, em.variable, em.compiler.path)
    key = em.compiler.new_ident(em.variable, "lookup")
    x_key, y_key = em.compiler.add_array(f"{key}_x", xs), em.compiler.add_array(f"{key}_y", ys)
    x = em.emit(node.argument).text
    return f"np.interp({x}, A['{x_key}'], A['{y_key}'])"


def _points(node, variable: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(node.x, dtype=float)
    ys = np.asarray(node.y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) == 0:
        raise ModelError(f"The lookup of '{variable}' in '{path}' needs as many x as y "
                         "values.")
    order = np.argsort(xs, kind="stable")
    if np.any(np.diff(xs[order]) == 0):
        raise ModelError(f"The lookup of '{variable}' in '{path}' repeats an x value.")
    return xs[order], ys[order]
