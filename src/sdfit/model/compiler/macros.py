"""Vensim macros, expanded in place: every call gets its own copy of the macro's
variables (stocks and other states included) as hidden parts of the program.

PySD runs a macro as a sub-model whose parameters are the caller's argument
expressions and whose clock is the caller's; a private copy per call with
each parameter bound to its argument computes the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pysd.translators.structures import abstract_model as am

from ...exceptions import ModelError, UnsupportedFeatureError
from ...names import canonical
from ..runtime.program import Variable
from ..translate import element_kind

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter


def expand(em: Emitter, macro: am.AbstractSection, arguments) -> str:
    """Expand one call of ``macro``; returns the identifier of its output."""
    from .expressions import Scope

    compiler = em.compiler
    name = macro.name.upper().replace("_", " ")
    if macro.returns:
        raise em.unsupported(f"the macro {name} with several outputs")
    if len(arguments) != len(macro.params):
        raise ModelError(f"Macro {name} takes {len(macro.params)} argument(s); the equation "
                         f"of '{em.variable}' in '{compiler.path}' gives {len(arguments)}.")
    owner = f"{em.variable} {macro.name}"
    local: dict[str, Variable] = {}
    for param, argument in zip(macro.params, arguments, strict=True):
        sub = em.child()
        expr = sub.emit(argument)
        if expr.dims:
            raise em.unsupported(f"a subscripted argument of the macro {name}")
        ident = compiler.hidden(owner, param, expr.text, sub.deps)
        local[canonical(param)] = Variable(param, ident, "auxiliary")
    for element in macro.elements:
        local[canonical(element.name)] = Variable(
            element.name, compiler.new_ident(owner, element.name), element_kind(element))
    output = local.get(canonical(macro.name))
    if output is None:
        raise UnsupportedFeatureError(f"the macro {name} without an equation named after it",
                                      em.variable, compiler.path)
    scope = Scope(local, parent=em.scope, inherited=frozenset({"control"}))
    compiler.compile_elements(macro.elements, scope, where=f"macro {name}")
    em.deps.add(output.ident)
    return output.ident
