"""Array built-ins at compile time: reductions, VECTOR functions, INVERT MATRIX, ELMCOUNT
and ALLOCATE, written as NumPy over the axes their dims name (PySD's ``CallBuilder``,
``AllocateAvailableBuilder`` and ``AllocateByPriorityBuilder`` decide the shapes).

Reductions act along the ranges written with ``!`` (``SUM(x[dim!])``); the
VECTOR functions along the last range of their argument; their run-time part is
:mod:`..runtime.arrays` (``V`` in the program).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...exceptions import ModelError
from .subscripts import Expr, align, union

if TYPE_CHECKING:  # the emitter imports this module
    from .expressions import Emitter

#: Reductions by PySD's name: NumPy function, and whether it reduces every range.
REDUCTIONS = {"sum": ("np.sum", False), "prod": ("np.prod", False),
              "vmin": ("np.min", False), "vmax": ("np.max", False),
              "vmin_xmile": ("np.min", True), "vmax_xmile": ("np.max", True)}


def _arity(em: Emitter, name: str, arguments, count: int) -> None:
    if len(arguments) != count:
        raise ModelError(f"{name.upper().replace('_', ' ')} takes {count} argument(s) but the "
                         f"equation of '{em.variable}' in '{em.compiler.path}' gives "
                         f"{len(arguments)}.")


def _axes(dims, every: bool = False) -> tuple[dict, str]:
    """Remaining dims, and the axes (batch axis first) of the ranges written ``dim!``."""
    axes = [i + 1 for i, d in enumerate(dims) if every or d.endswith("!")]
    rest = {d: c for d, c in dims.items() if not (every or d.endswith("!"))}
    return rest, "(" + "".join(f"{a}, " for a in axes) + ")"


def reduction(name: str):
    function, every = REDUCTIONS[name]

    def build(em: Emitter, arguments) -> Expr:
        if name.endswith("xmile") and len(arguments) > 1:  # XMILE MIN/MAX of two values
            args, final = em.aligned(arguments)
            binary = "np.minimum" if name.startswith("vmin") else "np.maximum"
            return Expr(f"{binary}({args[0].text}, {args[1].text})", 0, final)
        _arity(em, name, arguments, 1)
        arg = em.emit(arguments[0])
        rest, axes = _axes(arg.dims, every)
        if axes == "()":
            return arg
        return Expr(f"{function}({arg.text}, axis={axes})", 0, rest)

    return build


def elmcount(em: Emitter, arguments) -> Expr:
    """ELMCOUNT(range): the number of its elements."""
    _arity(em, "elmcount", arguments, 1)
    name = getattr(arguments[0], "reference", None)
    number = em.compiler.subscripts.number(name) if name else None
    if number is None or not number[1]:
        raise ModelError(f"ELMCOUNT in the equation of '{em.variable}' in "
                         f"'{em.compiler.path}' needs a subscript range.")
    return Expr(repr(float(number[0].size)))


def vector_select(em: Emitter, arguments) -> Expr:
    """VECTOR SELECT(selection[dim!], expression[dim!], missing, numerical, error)."""
    _arity(em, "vector_select", arguments, 5)
    (selection, expression), final = em.aligned(arguments[:2], full=(0, 1))
    rest, axes = _axes(final)
    missing = align(em.emit(arguments[2]), rest).text
    action, error = (em.emit(a).text for a in arguments[3:])
    return Expr(f"V.vector_select({selection.text}, {expression.text}, {axes}, {missing}, "
                f"{action}, {error})", 0, rest)


def along_last(name: str, count: int):
    """VECTOR SORT ORDER, VECTOR RANK, VECTOR REORDER: along the last range."""

    def build(em: Emitter, arguments) -> Expr:
        _arity(em, name, arguments, count)
        args, final = em.aligned(arguments, full=(0,))
        return Expr(f"V.{name}({', '.join(a.text for a in args)})", 0, final)

    return build


def vector_elm_map(em: Emitter, arguments) -> Expr:
    """VECTOR ELM MAP(vector[base], offset): the element ``offset`` places after the
    referenced one, counted over the vector's elements in order (row-major over all its
    ranges); NaN beyond its ends (Vensim's :NA:).  PySD has no VECTOR ELM MAP: this
    follows Vensim's documentation."""
    _arity(em, "vector_elm_map", arguments, 2)
    node = arguments[0]
    var = em.scope.resolve(getattr(node, "reference", ""))
    if var is None or not var.dims or node.subscripts is None:
        raise ModelError(f"VECTOR ELM MAP in the equation of '{em.variable}' in "
                         f"'{em.compiler.path}' needs a subscripted variable as its vector.")
    ranges = em.compiler.subscripts
    var_dims = ranges.coords(var.dims)
    ref = ranges.coords(node.subscripts.subscripts)
    strides = np.cumprod([1] + [len(c) for c in var_dims.values()][:0:-1])[::-1]
    base, dims = np.zeros(()), {}
    for (dim, coords), whole, stride in zip(ref.items(), var_dims.values(), strides,
                                            strict=True):
        positions = np.array([list(whole).index(c) for c in coords]) * stride
        if len(coords) == 1:
            base = base + positions[0]
        else:
            base = base[..., None] + positions
            dims[dim] = list(coords)
    offset = em.emit(arguments[1])
    final = union([Expr("", 0, dims), offset])
    key = em.compiler.add_array(em.compiler.new_ident(em.variable, "base"), base[None])
    base_text = align(Expr(f"A['{key}']", 0, dims), final).text if dims else f"A['{key}']"
    em.deps.add(var.ident)
    return Expr(f"V.vector_elm_map({var.ident}, {base_text}, {align(offset, final).text})", 0,
                final)


def invert_matrix(em: Emitter, arguments) -> Expr:
    """INVERT MATRIX(matrix, size): of the last two ranges (the size is theirs)."""
    _arity(em, "invert_matrix", arguments, 2)
    arg = em.emit(arguments[0])
    return Expr(f"V.invert_matrix({arg.text})", 0, arg.dims)


BUILDERS = {name: reduction(name) for name in REDUCTIONS} | {
    "elmcount": elmcount, "vector_select": vector_select,
    "vector_sort_order": along_last("vector_sort_order", 2),
    "vector_rank": along_last("vector_rank", 2),
    "vector_reorder": along_last("vector_reorder", 2),
    "invert_matrix": invert_matrix, "vector_elm_map": vector_elm_map,
}


# -- allocation ---------------------------------------------------------------------------------
def allocate_available(em: Emitter, node) -> Expr:
    """ALLOCATE AVAILABLE(request[..., target], pp[target, ptype], avail): the request's last
    range last, the priority profile's two ranges last (PySD's builder)."""
    pp = node.pp
    var = em.scope.resolve(pp.reference)
    pp_dims = list(var.dims) if var is not None else []
    if pp.subscripts is not None and pp_dims:  # the profile's own last range, as PySD
        pp.subscripts.subscripts = list(pp.subscripts.subscripts[:-1]) + pp_dims[-1:]
    request, profile, avail = (em.emit(a) for a in (node.request, pp, node.avail))
    last, pp_last = list(request.dims)[-1], list(profile.dims)[-1]
    final = union([request, profile, avail])
    base = {d: c for d, c in final.items() if d not in (last, pp_last)}
    avail_text = align(avail, base, full=True).text
    with_last = base | {last: final[last]}
    request_text = align(request, with_last, full=True).text
    profile_text = align(profile, with_last | {pp_last: final[pp_last]}, full=True).text
    return Expr(f"V.allocate_available({request_text}, {profile_text}, {avail_text})", 0,
                with_last)


def allocate_by_priority(em: Emitter, node) -> Expr:
    """ALLOCATE BY PRIORITY(request[..., target], priority[..., target], size, width,
    supply): allocated along the request's last range."""
    request, priority, width, supply = (em.emit(a) for a in (
        node.request, node.priority, node.width, node.supply))
    last = list(request.dims)[-1]
    final = union([request, priority, width, supply])
    base = {d: c for d, c in final.items() if d != last}
    width_text, supply_text = (align(e, base, full=True).text for e in (width, supply))
    with_last = base | {last: final[last]}
    request_text, priority_text = (align(e, with_last, full=True).text
                                   for e in (request, priority))
    return Expr(f"V.allocate_by_priority({request_text}, {priority_text}, {width_text}, "
                f"{supply_text})", 0, with_last)
