"""Lookup tables: their points become constant arrays of the program (``A`` in generated
code); calls become :func:`sdfit.model.runtime.functions.lookup`, as PySD's ``HardcodedLookups``.

Named tables (Vensim ``name((x, y), ...)``, XMILE graphical functions) honour
their interpolation type: ``interpolate`` holds the end values outside the
table, XMILE's ``extrapolate`` continues the end segments, ``discrete`` holds
the last point at or below x.  ``WITH LOOKUP`` and XMILE's inline graphical
functions interpolate and hold the ends, as PySD's ``np.interp`` does.  An x
value given twice is a jump, as in Vensim (PySD cannot run such tables).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pysd.translators.structures import abstract_expressions as ae

from ...exceptions import ModelError, UnsupportedFeatureError
from ..runtime import arrays, validate
from ..runtime.program import Variable
from .subscripts import Expr, align, placement, shape, union

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

MODES = ("interpolate", "extrapolate", "hold_backward")


def define(compiler, var: Variable, element, path: str) -> None:
    """Store the points of the named table ``var`` (one table per element when it is
    subscripted, padded to a common length)."""
    tables = [(_table(compiler, var, c, path), c) for c in element.components]
    if not var.dims:
        (xs, ys, mode), _ = tables[0]
        compiler.tables[var.ident] = (compiler.add_array(f"{var.ident}_x", xs),
                                      compiler.add_array(f"{var.ident}_y", ys), mode)
        return
    ranges = compiler.subscripts
    dims = ranges.coords(var.dims)
    length = max(len(xs) for (xs, _, _), _ in tables)
    size = int(np.prod(shape(dims)))
    all_xs, all_ys = np.full((size, length), np.inf), np.full((size, length), np.nan)
    for (xs, ys, _), component in tables:
        target, source = placement(dims, ranges.coords(component.subscripts[0]),
                                   [ranges.coords(e) for e in component.subscripts[1]])
        columns = ys.reshape(len(xs), -1)  # one table for the whole block, or one each
        columns = columns[:, source] if columns.shape[1] > 1 else columns
        all_xs[target, :len(xs)] = xs
        all_ys[target, :len(xs)] = columns.T
        all_ys[target, len(xs):] = columns.T[:, -1:]
    full = (1,) + shape(dims) + (length,)
    compiler.tables[var.ident] = (
        compiler.add_array(f"{var.ident}_x", all_xs.reshape(full)),
        compiler.add_array(f"{var.ident}_y", all_ys.reshape(full)), tables[0][0][2])


def _table(compiler, var: Variable, component, path: str
           ) -> tuple[np.ndarray, np.ndarray, str]:
    """x values (L,), y values (L,) or (L, *component dims) and the interpolation."""
    node = component.ast
    if isinstance(node, ae.GetLookupsStructure):
        from .external import lookup_points

        return lookup_points(compiler, var, component)
    if not isinstance(node, ae.LookupsStructure):
        raise UnsupportedFeatureError(f"a lookup defined by {type(node).__name__}", var.name,
                                      path)
    if node.type not in MODES:
        raise UnsupportedFeatureError(f"lookups of type '{node.type}'", var.name, path)
    xs, ys = _points(node, var.name, path)
    return xs, ys, node.type


def call(em: Emitter, var: Variable, subscripts, arguments) -> Expr:
    """``table(x)``, or ``table[subscripts](x)`` of a table per element."""
    if len(arguments) != 1:
        raise ModelError(f"The lookup '{var.name}' takes one argument; the equation of "
                         f"'{em.variable}' in '{em.compiler.path}' gives {len(arguments)}.")
    x = em.emit(arguments[0])
    xs, ys, mode = em.compiler.tables[var.ident]
    if not var.dims:
        jumps = ", True" if np.any(np.diff(em.compiler.arrays[xs]) <= 0) else ""
        return Expr(f"F.lookup({x.text}, A['{xs}'], A['{ys}'], '{mode}'{jumps})", 0, x.dims,
                    x.partial)
    # the tables as referenced, aligned with x: computed now, on the constant arrays
    table = em.subscripted("T", var, subscripts)
    final = union([x, table])
    text = align(table, final).text
    keys = []
    for key in (xs, ys):
        points = em.compiler.arrays[key]
        chosen = np.stack([validate.evaluate(text, {"T": points[..., i], "V": arrays},
                                             em.compiler.path)
                           for i in range(points.shape[-1])], axis=-1)
        keys.append(em.compiler.add_array(em.compiler.new_ident(em.variable, "table"), chosen))
    x_text = align(x, final).text
    return Expr(f"V.lookups({x_text}, A['{keys[0]}'], A['{keys[1]}'], '{mode}')", 0, final)


def inline(em: Emitter, node) -> Expr:
    """``WITH LOOKUP(x, ((x1, y1), ...))`` and XMILE's inline graphical functions."""
    xs, ys = _points(node.lookups, em.variable, em.compiler.path)
    key = em.compiler.new_ident(em.variable, "lookup")
    x_key, y_key = em.compiler.add_array(f"{key}_x", xs), em.compiler.add_array(f"{key}_y", ys)
    x = em.emit(node.argument)
    if np.any(np.diff(xs) <= 0):  # an x given twice: a jump
        return Expr(f"F.lookup({x.text}, A['{x_key}'], A['{y_key}'], 'interpolate', True)", 0,
                    x.dims, x.partial)
    return Expr(f"np.interp({x.text}, A['{x_key}'], A['{y_key}'])", 0, x.dims, x.partial)


def _points(node, variable: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(node.x, dtype=float)
    ys = np.asarray(node.y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) == 0:
        raise ModelError(f"The lookup of '{variable}' in '{path}' needs as many x as y "
                         "values.")
    order = np.argsort(xs, kind="stable")  # points with the same x keep their order
    return xs[order], ys[order]
