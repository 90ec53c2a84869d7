"""Subscript ranges, and the alignment of arrays by dimension name at compile time.

Every subscripted value of the program has the shape ``(B or 1, *dims)``: the
batch axis, then one axis per subscript range, in the order of its *dims*
(PySD's ``subscripts`` dict: range name -> element names).  The compiler
tracks the dims of every expression and writes the NumPy that aligns them —
transposing, inserting axes, taking element positions, renaming a range to the
one it maps to — the way PySD's builders reshape its xarrays by dimension name
(``pysd.builders.python.python_expressions_builder``), so that the program
itself only does array arithmetic.

Ranges, subranges, copies, ranges read from spreadsheets and mappings are
PySD's own :class:`~pysd.builders.python.subscripts.SubscriptManager`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

from ...exceptions import ModelError

#: Dims of an expression: range name (``"dim!"`` for a reduced one) -> element names.
Dims = dict


class Subscripts:
    """The subscript ranges of a model section (PySD's ``SubscriptManager``)."""

    def __init__(self, abstract_subscripts, root: str | Path, path: str = ""):
        from pysd.builders.python.subscripts import SubscriptManager

        self.path = path  # the model file, named in errors
        self.manager = SubscriptManager(abstract_subscripts, Path(root))
        self.numbers = _numbers(self.manager)

    @property
    def ranges(self) -> dict[str, list[str]]:
        return self.manager.subscripts

    def mapped(self, name: str) -> list[str]:
        """Ranges that ``name`` maps to."""
        return self.manager.mapping.get(name, [])

    def coords(self, subs) -> Dims:
        """Dims of a list of subscripts (ranges, ``range!`` or single elements)."""
        try:
            return self.manager.make_coord_dict(list(subs))
        except KeyError as error:
            raise ModelError(f"Model file '{self.path}' uses the subscript "
                             f"'{error.args[0]}', which it does not define.") from None

    def merge(self, subs_list, element: str = "") -> list[str]:
        """The ranges of a variable defined by several components."""
        return self.manager.make_merge_list([list(s) for s in subs_list], element)

    def number(self, name: str) -> tuple[np.ndarray, Dims] | None:
        """A range or element used as a value: its position(s) in its main range, from 1,
        and its dims (``None`` when ``name`` is neither)."""
        if name not in self.numbers:
            return None
        values, dims = self.numbers[name]
        return values, dict(dims)


def _numbers(manager) -> dict[str, tuple[np.ndarray, Dims]]:
    """The value of each range and element used as a value, by reference name: what
    PySD's ``SubscriptManager.subscript2num`` writes as Python text, computed from the
    same data (never by evaluating that text: it embeds range names from the model)."""
    numbers = {}
    ranges = manager.subscripts
    for main, subranges in manager.subranges.items():
        elements = ranges[main]
        numbers[_key(main)] = (np.arange(1.0, len(elements) + 1), {main: elements})
        for position, element in enumerate(elements, start=1):
            numbers[_key(element)] = (np.asarray(float(position)), {})
        for sub in subranges:
            positions = [elements.index(e) + 1 for e in ranges[sub]]
            numbers[_key(sub)] = (np.array(positions, dtype=float), {sub: ranges[sub]})
    return numbers


def _key(name: str) -> str:
    """A name as PySD's abstract syntax trees refer to it."""
    return name.replace(" ", "_").lower()


def shape(dims: Dims) -> tuple[int, ...]:
    return tuple(len(c) for c in dims.values())


def align_text(text: str, dims: Dims, final: Dims) -> str:
    """NumPy text turning ``text`` (an array of ``dims``, already a Python atom or
    parenthesised) into one whose axes follow ``final``: a transpose, then a new
    axis of length 1 for each range of ``final`` it lacks."""
    names = list(dims)
    present = [d for d in final if d in dims]
    if len(present) != len(names):
        raise KeyError(next(d for d in names if d not in final))
    if present != names:
        perm = [0] + [1 + names.index(d) for d in present]
        text = f"{text}.transpose({', '.join(map(str, perm))})"
    if len(present) < len(final):
        index = ", ".join(":" if d in dims else "None" for d in final)
        text = f"{text}[:, {index}]"
    return text


def select(text: str, var_dims: Dims, ref: Dims) -> tuple[str, Dims]:
    """The reference ``var[ref]`` of a variable of ``var_dims``: PySD's ``visit_loc``.

    A single element drops its axis; a subrange takes its elements' positions and
    names the axis after the subrange; a range with the same elements only renames.
    Returns the NumPy text and the dims of the result.
    """
    final: Dims = {}
    basic, taken = [":"], []
    for (dim, coord), (_, orig_coord) in zip(ref.items(), var_dims.items(), strict=True):
        if len(coord) == 1:
            basic.append(str(orig_coord.index(coord[0])))
            continue
        basic.append(":")
        if list(coord) != list(orig_coord):
            taken.append((len(final) + 1, [orig_coord.index(c) for c in coord]))
        final[dim] = list(coord)
    if any(b != ":" for b in basic):
        text = f"{text}[{', '.join(basic)}]"
    for axis, positions in taken:
        text = f"{text}[{_index(positions, axis)}]"
    return text, final


def _index(positions: list[int], axis: int) -> str:
    """Basic-indexing text for ``positions`` along ``axis`` (a slice when they are evenly
    spaced, so the result is a view), else an integer list."""
    lead = ":, " * axis
    steps = np.diff(positions)
    if len(positions) > 1 and np.all(steps == steps[0]) and steps[0] > 0:
        stop = positions[-1] + 1
        step = "" if steps[0] == 1 else f":{steps[0]}"
        return f"{lead}{positions[0]}:{stop}{step}"
    return f"{lead}{positions}"


def placement(element: Dims, component: Dims, excepts: list[Dims]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Where a component's block goes in its variable: flat positions in the variable's
    array and in the component's block, EXCEPT combinations left out."""
    per_axis = [[ecoord.index(c) for c in coord]
                for coord, ecoord in zip(component.values(), element.values(), strict=True)]
    excluded = set()
    for excluded_dims in excepts:
        ex_axes = [set(c) for c in excluded_dims.values()]
        for combo in product(*component.values()):
            if all(c in ex for c, ex in zip(combo, ex_axes, strict=True)):
                excluded.add(combo)
    block = shape(component)
    target, source = [], []
    for local, combo in zip(np.ndindex(*block), product(*component.values()), strict=True):
        if combo in excluded:
            continue
        full = tuple(axis[i] for axis, i in zip(per_axis, local, strict=True))
        target.append(np.ravel_multi_index(full, shape(element)) if full else 0)
        source.append(np.ravel_multi_index(local, block) if local else 0)
    return np.array(target, dtype=int), np.array(source, dtype=int)


# -- expressions with dims -------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Expr:
    """Python text of an expression, its arithmetic order (PySD's ``BuildAST.order``) and
    its dims; ``partial`` when some of its axes still have length 1 (a lifted value)."""

    text: str
    order: int = 0
    dims: Dims = field(default_factory=dict)
    partial: bool = False

    def lowered(self, order: int) -> Expr:
        """Parenthesised if an operator of ``order`` would otherwise bind it wrongly."""
        if self.order >= order and self.order != 0 and order != 0:
            return Expr(f"({self.text})", 0, self.dims, self.partial)
        return self

    @property
    def atom(self) -> str:
        return self.text if self.order == 0 else f"({self.text})"


def union(exprs) -> Dims:
    """The dims of an operation on ``exprs``: every range of each, in order of appearance
    (PySD's ``StructureBuilder._compute_final_subscripts``)."""
    final: Dims = {}
    for expr in exprs:
        final.update(expr.dims)
    return final


def align(expr: Expr, final: Dims, full: bool = False) -> Expr:
    """``expr`` with its axes in the order of ``final`` (ranges it lacks get length 1, or
    their whole length when ``full``).  Numbers are left to NumPy's broadcasting."""
    if not final:
        return expr
    if not expr.dims:
        if full:
            return Expr(f"V.fill({expr.text}, {shape(final)})", 0, dict(final))
        if _is_literal(expr.text):
            return expr
        return Expr(f"V.lift({expr.text}, {len(final)})", 0, dict(final), partial=True)
    if list(expr.dims) == list(final):
        text, order = expr.text, expr.order
    else:
        text, order = align_text(expr.atom, expr.dims, final), 0
    partial = expr.partial or len(expr.dims) < len(final)
    if full and partial:
        return Expr(f"V.fill({text}, {shape(final)})", 0, dict(final))
    return Expr(text, order, dict(final), partial)


def _is_literal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text in ("np.nan", "np.inf", "-np.inf", "np.pi")
    return True
