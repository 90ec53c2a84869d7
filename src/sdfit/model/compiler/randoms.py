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
from .subscripts import Expr, align, shape

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

#: PySD's name -> (Noise method, arity (min, max), how the method's arguments are made
#: from the call's: positions, or literal text).
FUNCTIONS = {
    # Vensim
    "random_0_1": ("uniform", (0, 0), ("0.0", "1.0")),
    "random_uniform": ("uniform", (3, 3), (0, 1)),
    "random_normal": ("normal", (5, 5), (0, 1, 2, 3)),
    "random_exponential": ("exponential", (5, 5), (0, 1, 2, 3)),
    "random_gamma": ("gamma", (6, 6), (0, 1, 2, 3, 4)),
    "random_beta": ("beta", (7, 7), (0, 1, 2, 3, 4, 5)),
    "random_weibull": ("weibull", (6, 6), (0, 1, 2, 3, 4)),
    "random_poisson": ("poisson", (6, 6), (0, 1, 2, 3, 4)),
    "random_binomial": ("binomial", (7, 7), (0, 1, 2, 3, 4, 5)),
    "random_negative_binomial": ("negative_binomial", (7, 7), (0, 1, 2, 3, 4, 5)),
    "random_triangular": ("triangular", (6, 6), (0, 1, 2, 3, 4)),
    # XMILE
    "normal": ("normal", (2, 3), ("-np.inf", "np.inf", 0, 1)),
    "random": ("uniform", (2, 3), (0, 1)),
    "exprnd": ("exponential", (1, 2), ("-np.inf", "np.inf", "0.0", 0)),
    "lognormal": ("lognormal", (2, 3), (0, 1)),
    "poisson": ("poisson", (1, 2), ("-np.inf", "np.inf", 0, "0.0", "1.0")),
}


def call(em: Emitter, name: str, arguments) -> Expr:
    """A draw of the random function ``name`` with the shape of the component."""
    method, (least, most), spec = FUNCTIONS[name]
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
