"""Compile one model variable from its components (PySD's ``ElementBuilder``).

A variable without subscripts has one component and its expression is the
variable.  A subscripted variable may be defined by several components, each
over some of its elements (ranges, subranges, single elements, EXCEPT): each
component's expression is aligned to the component's own dims and placed into
the variable's array (``V.assemble``).  Components that read nothing are
computed now, so element-by-element constants cost nothing per step.
"""

from __future__ import annotations

import numpy as np

from ...exceptions import UnsupportedFeatureError
from ..runtime import arrays, functions, validate
from ..runtime.program import Assignment, Variable
from .expressions import Emitter, Scope
from .statefuls import add_stock
from .subscripts import Dims, Expr, align, placement, shape


def compile_element(compiler, var: Variable, element, scope: Scope, label: str) -> None:
    """Add the assignment (or, for a stock, the state) of ``var`` to the program."""
    dims = compiler.subscripts.coords(var.dims) if var.dims else {}
    if var.kind == "stock":
        flows, initials = [], []
        for component in element.components:
            node = component.ast
            flows.append(_piece(compiler, label, scope, component, node.flow))
            initials.append(_piece(compiler, label, scope, component, node.initial))
        initial_text, initial_deps = assembled(compiler, var, dims, initials, full=True)
        flow_text, flow_deps = assembled(compiler, var, dims, flows)
        first = element.components[0].ast
        add_stock(compiler, var.ident, initial_text, initial_deps, flow_text, flow_deps,
                  first.non_negative, getattr(first, "limits", None))
        return
    pieces = [_piece(compiler, label, scope, c, c.ast, var) for c in element.components]
    text, deps = assembled(compiler, var, dims, pieces, full=True)
    compiler.assignments[var.ident] = Assignment(var.ident, text, frozenset(deps))


def _piece(compiler, label: str, scope: Scope, component, node, var: Variable | None = None):
    """(expression, its emitter, the component's dims, its EXCEPT dims)."""
    ranges = compiler.subscripts
    def_subs = ranges.coords(component.subscripts[0])
    emitter = Emitter(compiler, label, scope, def_subs)
    emitter.component = component  # data variables read its keyword
    emitter.defining = var  # a SAMPLE IF TRUE may read its own variable
    expr = emitter.emit(node)
    excepts = [ranges.coords(e) for e in component.subscripts[1]]
    return expr, emitter, def_subs, excepts


def assembled(compiler, var: Variable, dims: Dims, pieces, full: bool = False
              ) -> tuple[str, set[str]]:
    """The text of the variable's whole value from its components' pieces, and what it
    reads."""
    deps = set().union(*(p[1].deps for p in pieces))
    if not dims:
        return pieces[0][0].text, deps
    fitted = [(_fit(compiler, var, expr, def_subs, dims), def_subs, excepts)
              for expr, _, def_subs, excepts in pieces]
    expr, def_subs, excepts = fitted[0]
    if len(fitted) == 1 and not excepts and list(map(list, def_subs.values())) == list(
            map(list, dims.values())):
        return align(expr, def_subs, full).text, deps
    layout = []
    for expr, def_subs, excepts in fitted:
        target, source = placement(dims, def_subs, excepts)
        layout.append((align(expr, def_subs), shape(def_subs), target, source))
    if not deps:  # a constant defined piece by piece: assembled once, now
        values = arrays.assemble_flat(shape(dims), [(_evaluate(compiler, e.text), *rest)
                                                    for e, *rest in layout])
        key = compiler.new_ident(var.name, "values")
        return f"A['{compiler.add_array(key, values)}']", deps
    blocks = [_block(dims, def_subs) for _, def_subs, excepts in fitted if not excepts]
    if len(blocks) == len(fitted) and None not in blocks:  # blocks: assigned by slicing
        covered = sum(len(t) for _, _, t, _ in layout) == int(np.prod(shape(dims)))
        parts = [f"({expr.text}, {block})" for (expr, *_), block in zip(layout, blocks,
                                                                          strict=True)]
        return f"V.assemble({shape(dims)}, [{', '.join(parts)}], {covered})", deps
    parts = []
    for expr, block, target, source in layout:
        t_key = compiler.add_array(compiler.new_ident(var.name, "target"), target)
        s_key = compiler.add_array(compiler.new_ident(var.name, "source"), source)
        parts.append(f"({expr.text}, {block}, A['{t_key}'], A['{s_key}'])")
    return f"V.assemble_flat({shape(dims)}, [{', '.join(parts)}])", deps


def _block(dims: Dims, def_subs: Dims) -> str | None:
    """The component's elements as basic indexing of the variable's array (text of a
    tuple of slices, batch axis first), when each range takes consecutive elements."""
    index = ["slice(None)"]
    for coords, whole in zip(def_subs.values(), dims.values(), strict=True):
        positions = [list(whole).index(c) for c in coords]
        if positions != list(range(positions[0], positions[0] + len(positions))):
            return None
        index.append(f"slice({positions[0]}, {positions[-1] + 1})")
    return "(" + ", ".join(index) + ")"


def _fit(compiler, var: Variable, expr: Expr, def_subs: Dims, dims: Dims) -> Expr:
    """``expr`` with its ranges named as the component's: a range named as the variable's
    range at that position, or with the same elements as an unused one, is renamed."""
    names = list(def_subs)
    renamed: Dims = {}
    for dim, coords in expr.dims.items():
        if dim not in def_subs:
            position = list(dims).index(dim) if dim in dims else None
            if position is not None:
                dim = names[position]
            else:
                same = [d for d in names if list(def_subs[d]) == list(coords)
                        and d not in expr.dims and d not in renamed]
                if not same:
                    raise UnsupportedFeatureError(
                        f"an expression over '{dim}' defining elements of "
                        f"{', '.join(names)}", var.name, compiler.path)
                dim = same[0]
        renamed[dim] = coords
    return Expr(expr.text, expr.order, renamed, expr.partial)


def _evaluate(compiler, text: str):
    """The value of a constant expression of the program (text the compiler wrote),
    computed by walking its checked syntax tree (never ``eval``)."""
    return validate.evaluate(text, {"np": np, "F": functions, "V": arrays,
                                    "A": compiler.arrays, **validate.BUILTINS},
                             compiler.path)
