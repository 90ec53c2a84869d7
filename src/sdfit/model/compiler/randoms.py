"""Random functions: each call becomes a draw of the run's :class:`~..runtime.noise.Noise`
(``F.draw(noise, ...)`` in generated code), with its own call-site number, so that its
numbers depend only on (seed, stream, call site, time step).

Vensim's family takes (min, max, ..., shift, stretch, stream ID); XMILE's NORMAL,
RANDOM, EXPRND, LOGNORMAL and POISSON take their parameters and an optional seed.  The
stream ID or seed of the model is accepted and not used: every call has its own stream,
as in PySD, whose random functions ignore it too.  Like PySD's, a draw has the shape of
the component being defined (one independent number per element) and changes at every
time step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...exceptions import ModelError
from ..runtime import noise
from .subscripts import Expr, align, shape

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

#: PySD's name -> (arity (min, max), how the draw's parameters are made from the call's
#: arguments: positions, or literal text); the distribution is :data:`noise.FUNCTIONS`'.
FUNCTIONS = {
    # Vensim
    "random_0_1": ((0, 0), ("0.0", "1.0")),
    "random_uniform": ((3, 3), (0, 1)),
    "random_normal": ((5, 5), (0, 1, 2, 3)),
    "random_exponential": ((5, 5), (0, 1, 2, 3)),
    "random_gamma": ((6, 6), (0, 1, 2, 3, 4)),
    "random_beta": ((7, 7), (0, 1, 2, 3, 4, 5)),
    "random_weibull": ((6, 6), (0, 1, 2, 3, 4)),
    "random_poisson": ((6, 6), (0, 1, 2, 3, 4)),
    "random_binomial": ((7, 7), (0, 1, 2, 3, 4, 5)),
    "random_negative_binomial": ((7, 7), (0, 1, 2, 3, 4, 5)),
    "random_triangular": ((6, 6), (0, 1, 2, 3, 4)),
    # XMILE
    "normal": ((2, 3), ("-np.inf", "np.inf", 0, 1)),
    "random": ((2, 3), (0, 1)),
    "exprnd": ((1, 2), ("-np.inf", "np.inf", "0.0", 0)),
    "lognormal": ((2, 3), (0, 1)),
    "poisson": ((1, 2), ("-np.inf", "np.inf", 0, "0.0", "1.0")),
}


def call(em: Emitter, name: str, arguments) -> Expr:
    """A draw of the random function ``name`` with the shape of the component."""
    (least, most), spec = FUNCTIONS[name]
    method = noise.FUNCTIONS[name]
    if not least <= len(arguments) <= most:
        count = str(least) if least == most else f"{least} to {most}"
        raise ModelError(f"{name.upper().replace('_', ' ')} takes {count} argument(s); the "
                         f"equation of '{em.variable}' in '{em.compiler.path}' gives "
                         f"{len(arguments)}.")
    final = dict(em.def_subs)
    texts = []
    for item in spec:
        if isinstance(item, str):
            texts.append(item)
            continue
        expr = em.emit(arguments[item])
        if set(expr.dims) - set(final):
            raise em.unsupported("a random function whose arguments have more subscripts "
                                 "than the variable it defines")
        texts.append(align(expr, final).text)
    em.deps.add("time")  # a new draw at every step
    site = em.compiler.random_site()
    return Expr(f"F.draw(noise, '{method}', {site}, {shape(final)}, {', '.join(texts)})", 0,
                final)
