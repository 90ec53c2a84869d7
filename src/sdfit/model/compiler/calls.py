"""Built-ins beyond what PySD builds: Vensim's LOOKUP FORWARD / BACKWARD / EXTRAPOLATE and
GAMMA LN, XMILE's LOOKUP(graphical function, x), SIZE and PREVIOUS.  Each takes the
emitter of the equation and the call's arguments and returns the expression."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pysd.translators.structures import abstract_expressions as ae

from ...exceptions import ModelError
from ..runtime.variables import key
from . import lookups
from .subscripts import Expr, shape

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

#: Vensim's lookup functions -> the interpolation of runtime ``F.lookup``.
LOOKUP_MODES = {"lookup_forward": "look_forward", "lookup_backward": "hold_backward",
                "lookup_extrapolate": "extrapolate"}


def _arity(em: Emitter, name: str, arguments, count: int) -> None:
    if len(arguments) != count:
        raise ModelError(f"{name.upper().replace('_', ' ')} takes {count} argument(s); the "
                         f"equation of '{em.variable}' in '{em.compiler.path}' gives "
                         f"{len(arguments)}.")


def _table(em: Emitter, node, name: str):
    """The lookup a call names in its first argument: (variable, its element)."""
    if not isinstance(node, ae.ReferenceStructure):
        raise em.unsupported(f"{name} of an expression (it takes a lookup's name)")
    var = em.scope.resolve(node.reference)
    if var is None:
        raise ModelError(f"The equation of '{em.variable}' in model file '{em.compiler.path}' "
                         f"refers to '{node.reference}', which the model does not define.")
    element = next((e for e in em.compiler.section.elements if key(e.name) == key(var.name)),
                   None)
    return var, element


def lookup_mode(em: Emitter, name: str, arguments) -> Expr:
    """LOOKUP FORWARD (the next point at or above x), LOOKUP BACKWARD (the last at or below
    it) and LOOKUP EXTRAPOLATE (linear beyond the ends) of a lookup without subscripts."""
    _arity(em, name, arguments, 2)
    var, _ = _table(em, arguments[0], name.upper().replace("_", " "))
    if var.kind != "lookup" or var.dims:
        raise em.unsupported(f"{name.upper().replace('_', ' ')} of other than a lookup "
                             "without subscripts")
    x = em.emit(arguments[1])
    xs, ys, _ = em.compiler.tables[var.ident]
    return Expr(f"F.lookup({x.text}, A['{xs}'], A['{ys}'], '{LOOKUP_MODES[name]}')", 0,
                x.dims, x.partial)


def xmile_lookup(em: Emitter, arguments) -> Expr:
    """XMILE's LOOKUP(graphical function, x): the graphical function's table at x."""
    _arity(em, "lookup", arguments, 2)
    var, element = _table(em, arguments[0], "LOOKUP")
    if var.kind == "lookup":
        return lookups.call(em, var, arguments[0].subscripts, arguments[1:])
    node = element.components[0].ast if element is not None else None
    if len(element.components) != 1 or not isinstance(node, ae.InlineLookupsStructure):
        raise em.unsupported("LOOKUP of a variable that is not a graphical function")
    return lookups.inline(em, ae.InlineLookupsStructure(arguments[1], node.lookups))


def size(em: Emitter, arguments) -> Expr:
    """XMILE's SIZE(array): how many elements it has."""
    _arity(em, "size", arguments, 1)
    expr = em.child().emit(arguments[0])
    return Expr(repr(float(np.prod(shape(expr.dims)))))


def gamma_ln(em: Emitter, arguments) -> Expr:
    """Vensim's GAMMA LN(x): the logarithm of the gamma function."""
    _arity(em, "gamma_ln", arguments, 1)
    x = em.emit(arguments[0])
    return Expr(f"F.gamma_ln({x.text})", 0, x.dims, x.partial)
