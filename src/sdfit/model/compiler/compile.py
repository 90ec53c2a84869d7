"""Compile PySD's AbstractModel into a :class:`~sdfit.model.runtime.program.BatchModel`.

The compiler walks each element's abstract syntax tree once and writes a
NumPy expression for it in which every value carries a leading batch axis
(:mod:`.expressions`); stateful structures become states of the program
(:mod:`.statefuls`), lookup tables constant arrays (:mod:`.lookups`) and macro
calls private copies of the macro (:mod:`.macros`).  Whatever it cannot
compile raises :class:`UnsupportedFeatureError` naming the construct, the
variable and the file: nothing silently computes something else.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pysd.translators.structures import abstract_model as am

from ...exceptions import ModelError
from ...names import canonical
from ..runtime.program import CONTROLS, Assignment, BatchModel, State, Variable
from ..runtime.variables import key as variable_key
from ..runtime.variables import unquoted
from ..translate import element_kind
from . import lookups
from .elements import compile_element
from .expressions import Scope
from .subscripts import Subscripts


def compile_model(abstract_model: am.AbstractModel, path: str | Path = "",
                  data_files: Iterable[str | Path] = (), method: str = "euler") -> BatchModel:
    """Compile a parsed ``AbstractModel`` into a :class:`BatchModel`; ``data_files`` hold
    the model's data variables (``name := ...``), as for PySD's ``read_vensim``;
    ``method`` is the integration method runs use by default."""
    return _Compiler(abstract_model, str(path or abstract_model.original_path),
                     data_files, method).compile()


class _Compiler:
    """Collects the program (variables, assignments, states, tables) of one model."""

    def __init__(self, abstract_model: am.AbstractModel, path: str,
                 data_files: Iterable[str | Path] = (), method: str = "euler"):
        self.path, self.method = path, method
        self.root = Path(path).parent  # external files are relative to the model
        self.data_files = [Path(f) for f in data_files]
        self.section = next(s for s in abstract_model.sections if s.type == "main")
        self.macros = {s.name: s for s in abstract_model.sections if s.type == "macro"}
        self.variables: dict[str, Variable] = {}
        self.assignments: dict[str, Assignment] = {}
        self.initials: dict[str, Assignment] = {}
        self.states: list[State] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.tables: dict[str, tuple[str, str, str]] = {}
        self.random_sites = 0
        self.subscripts = Subscripts(self.section.subscripts, self.root, self.path)
        self._idents: set[str] = {"time", "dt", "np", "F", "V", "A", "T"}

    # -- driver -------------------------------------------------------------------------
    def compile(self) -> BatchModel:
        elements = sorted(
            self.section.elements, key=lambda e: not isinstance(e, am.AbstractControlElement)
        )
        for element in elements:
            self._declare(element)
        missing = [c for c in CONTROLS if c not in {v.ident for v in self.variables.values()}]
        if missing:
            names = ", ".join(c[2:].replace("_", " ").upper() for c in missing)
            raise ModelError(f"Model file '{self.path}' does not define {names}.")
        self.compile_elements(elements, Scope(self.variables))
        ranges = {d: tuple(self.subscripts.ranges[d])
                  for v in self.variables.values() for d in v.dims}
        model = BatchModel(self.path, self.variables, self.assignments, tuple(self.states),
                           self.arrays, self.initials, ranges, self.method, self.random_sites)
        static = model.static_idents  # checks the program for circular equations
        model.variables = {
            key: Variable(v.name, v.ident, "constant", v.dims)
            if v.kind == "auxiliary" and v.ident in static else v
            for key, v in self.variables.items()
        }
        return model

    def _declare(self, element: am.AbstractElement) -> None:
        key = variable_key(element.name)
        if key in self.variables:
            raise ModelError(f"Model file '{self.path}' defines '{element.name}' twice.")
        kind = element_kind(element)
        dims = ()
        if any(c.subscripts[0] for c in element.components):
            dims = tuple(self.subscripts.merge([c.subscripts[0] for c in element.components],
                                               element.name))
        self.variables[key] = Variable(unquoted(element.name),
                                       self.new_ident(key, prefix="v_"), kind, dims)

    def compile_elements(self, elements: Iterable[am.AbstractElement], scope: Scope,
                         where: str = "") -> None:
        """Compile the equations of ``elements``, whose variables ``scope`` declares
        (tables first: calls need to know a table's interpolation)."""
        elements = list(elements)
        for element in elements:
            var = scope.resolve(element.name)
            if var.kind == "lookup":
                lookups.define(self, var, element, self.path)
        for element in elements:
            var = scope.resolve(element.name)
            if var.kind == "lookup":
                continue
            label = f"{element.name} (in {where})" if where else element.name
            compile_element(self, var, element, scope, label)

    # -- what the emitters add to the program ----------------------------------------------
    def new_ident(self, owner: str, role: str = "", prefix: str = "h_") -> str:
        """A fresh identifier; hidden parts of the program start with ``h_``."""
        key = canonical(f"{owner} {role}")
        base = prefix + re.sub(r"\W", "_", key, flags=re.ASCII)
        ident, n = base, 1
        while ident in self._idents or keyword.iskeyword(ident):
            n += 1
            ident = f"{base}_{n}"
        self._idents.add(ident)
        return ident

    def hidden(self, owner: str, role: str, expr: str, deps: Iterable[str]) -> str:
        """A hidden auxiliary ``ident = expr``; returns its identifier."""
        ident = self.new_ident(owner, role)
        self.assignments[ident] = Assignment(ident, expr, frozenset(deps))
        return ident

    def add_state(self, ident: str, initial: str, initial_deps: Iterable[str], update: str,
                  update_deps: Iterable[str]) -> None:
        """A discrete value carried from step to step: ``initial`` at the start, ``update``
        after each TIME STEP, whatever the integration method."""
        self.states.append(State(ident, Assignment(ident, initial, frozenset(initial_deps)),
                                 Assignment(ident, update, frozenset(update_deps))))

    def add_continuous(self, ident: str, initial: str, initial_deps: Iterable[str],
                       rate: str, rate_deps: Iterable[str], limit: str = "{}",
                       staged: bool = False, step: str | None = None) -> None:
        """A state whose derivative over time is ``rate``: Euler moves it by ``rate * dt``
        (PySD's arithmetic; ``step``, when given, writes that move as one call), RK4
        integrates the rate; ``limit`` bounds the result."""
        deps = frozenset(rate_deps) | {ident}
        if step is None:
            step = f"F.advance({ident}, {rate}, dt)" if staged else f"{ident} + ({rate}) * dt"
        self.states.append(State(ident, Assignment(ident, initial, frozenset(initial_deps)),
                                 Assignment(ident, limit.format(step), deps),
                                 Assignment(ident, rate, deps), limit, staged))

    def random_site(self) -> int:
        """A number for one more call of a random function (its draws are its own)."""
        self.random_sites += 1
        return self.random_sites

    def add_initial(self, ident: str, expr: str, deps: Iterable[str]) -> None:
        """What ``ident`` is while the model initialises (ACTIVE INITIAL)."""
        self.initials[ident] = Assignment(ident, expr, frozenset(deps))

    def add_array(self, key: str, values: np.ndarray) -> str:
        """A constant table of the program, read as ``A[key]``."""
        self.arrays[key] = values
        return key
