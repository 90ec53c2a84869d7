"""Vensim macros, expanded in place: every call gets its own copy of the macro's
variables (stocks and other states included) as hidden parts of the program.

PySD runs a macro as a sub-model whose parameters are the caller's argument
expressions and whose clock is the caller's; a private copy per call with
each parameter bound to its argument computes the same.  Called with subscripted
arguments, the macro applies element by element: its variables take the ranges
of the arguments (as in Vensim; PySD cannot run such calls).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pysd.translators.structures import abstract_model as am

from ...exceptions import ModelError, UnsupportedFeatureError
from ..runtime.program import Variable
from ..runtime.variables import key
from ..translate import element_kind
from .subscripts import Expr, union

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter


def expand(em: Emitter, macro: am.AbstractSection, arguments) -> Expr:
    """Expand one call of ``macro``; returns its output."""
    from .expressions import Scope

    compiler = em.compiler
    name = macro.name.upper().replace("_", " ")
    if macro.returns:
        raise em.unsupported(f"the macro {name} with several outputs")
    if len(arguments) != len(macro.params):
        raise ModelError(f"Macro {name} takes {len(macro.params)} argument(s); the equation "
                         f"of '{em.variable}' in '{compiler.path}' gives {len(arguments)}.")
    owner = f"{em.variable} {macro.name}"
    subs = [em.child() for _ in arguments]
    exprs = [sub.emit(argument) for sub, argument in zip(subs, arguments, strict=True)]
    dims = union(exprs)
    if any(d.endswith("!") or d not in compiler.subscripts.ranges for d in dims):
        raise em.unsupported(f"an argument of the macro {name} over part of a range")
    local: dict[str, Variable] = {}
    for param, sub, expr in zip(macro.params, subs, exprs, strict=True):
        ident = compiler.hidden(owner, param, expr.text, sub.deps)
        local[key(param)] = Variable(param, ident, "auxiliary", tuple(expr.dims))
    elements = macro.elements
    if dims:  # every variable of the macro over the arguments' ranges
        elements = [replace(e, components=[replace(c, subscripts=(list(dims), []))
                                           for c in e.components]) for e in elements]
    for element in elements:
        local[key(element.name)] = Variable(
            element.name, compiler.new_ident(owner, element.name), element_kind(element),
            tuple(dims))
    output = local.get(key(macro.name))
    if output is None:
        raise UnsupportedFeatureError(f"the macro {name} without an equation named after it",
                                      em.variable, compiler.path)
    scope = Scope(local, parent=em.scope, inherited=frozenset({"control"}))
    compiler.compile_elements(elements, scope, where=f"macro {name}")
    em.deps.add(output.ident)
    return Expr(output.ident, 0, {d: list(c) for d, c in dims.items()})
