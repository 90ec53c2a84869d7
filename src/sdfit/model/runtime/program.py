"""The compiled form of a model: an ordered array program with a leading batch axis.

Every value in the program is either a scalar (the same for every unit) or an
array of shape ``(B or 1, *dims)``: the batch axis first, then one axis per
subscript range, so NumPy broadcasting does the per-unit work.

A :class:`BatchModel` is plain data (names, Python expressions as text and
constant arrays), so it pickles cheaply to worker processes; the Python
function that runs it is generated from that text (:mod:`.codegen`) and
compiled lazily, once per process and per set of recorded variables.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ...exceptions import ModelError
from .variables import Simulation, Variable, VariableTable, batched

#: PySD's relative precision for deciding whether a time is the final or a saving time.
TIME_RPREC = 1e-5

#: Identifiers of the four control variables in every program.
CONTROLS = ("v_initial_time", "v_final_time", "v_time_step", "v_saveper")


@dataclass(frozen=True)
class Assignment:
    """``target = expr``: one statement of the program."""

    target: str
    expr: str
    deps: frozenset[str]


@dataclass(frozen=True)
class State:
    """A value carried from one time step to the next: a stock, or the memory of a
    SMOOTH, DELAY or other stateful structure.

    ``initial`` computes it at the initial time; ``update`` is the expression of
    its value one TIME STEP later (it may use ``dt``).
    """

    ident: str
    initial: Assignment
    update: Assignment


@dataclass
class BatchModel(VariableTable):
    """A compiled system dynamics model whose every variable has a leading batch axis.

    Build it with :func:`sdfit.load_model`.  ``run`` simulates a batch of units,
    each with its own parameter values and initial stocks.
    """

    path: str
    variables: dict[str, Variable]  # canonical name -> Variable
    assignments: dict[str, Assignment]  # ident -> Assignment
    states: tuple[State, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # constant tables
    initials: dict[str, Assignment] = field(default_factory=dict)  # ACTIVE INITIAL values
    ranges: dict[str, tuple[str, ...]] = field(default_factory=dict)  # subscript elements
    _programs: dict = field(default_factory=dict, repr=False, compare=False)

    # -- pickling: generated functions are rebuilt in each process ----------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_programs"] = {}
        for cached in ("static_idents", "schedule"):
            state.pop(cached, None)
        return state

    # -- time ---------------------------------------------------------------------------
    def control(self, ident: str) -> float:
        """Value of a control variable that does not change over time."""
        if ident not in self.static_idents:
            raise ModelError(f"'{ident[2:]}' of model '{self.name}' changes over time.")
        program = self._program(())
        return float(program.static_value(ident))

    @property
    def initial_time(self) -> float:
        return self.control("v_initial_time")

    @property
    def final_time(self) -> float:
        return self.control("v_final_time")

    @property
    def time_step(self) -> float:
        return self.control("v_time_step")

    def constant_value(self, name: str) -> float:
        """The value a constant (or one element of it, ``"rate[dec 3]"``) has by its own
        equation."""
        var, index = self.element(name)
        value = np.asarray(self._program(()).static_value(var.ident), dtype=float)
        return float(value[(0,) + index] if index else value.ravel()[0])

    def constant_array(self, name: str) -> np.ndarray:
        """A constant's own value with its batch axis: a scalar, or shape (1, *dims)."""
        return np.asarray(self._program(()).static_value(self.variable(name).ident),
                          dtype=float)

    def shape(self, name: str) -> tuple[int, ...]:
        """The subscript shape of a variable (``()`` without subscripts)."""
        return tuple(len(self.ranges[d]) for d in self.variable(name).dims)

    # -- dependency analysis ----------------------------------------------------------
    @cached_property
    def static_idents(self) -> frozenset[str]:
        """Assignments that depend on neither time nor any state: computed once per run.
        An ACTIVE INITIAL is never static: it changes when initialisation ends."""
        state_idents = {s.ident for s in self.states}
        dynamic: set[str] = set()
        order = _topological(self.assignments, "assignment", self)
        for ident in order:
            deps = self.assignments[ident].deps
            if ("time" in deps or deps & state_idents or deps & dynamic
                    or ident in self.initials):
                dynamic.add(ident)
        return frozenset(self.assignments) - dynamic

    @cached_property
    def schedule(self) -> tuple[list[str], list[str], list[str]]:
        """(static, initial, dynamic) statement orders."""
        full = _topological(self.assignments, "assignment", self)
        static = [i for i in full if i in self.static_idents]
        dynamic = [i for i in full if i not in self.static_idents]
        # initialisation: state initial values and the dynamic auxiliaries they need
        initial_graph: dict[str, Assignment] = {
            i: self.initials.get(i, self.assignments[i]) for i in dynamic
        } | {s.ident: s.initial for s in self.states}
        needed = closure({s.ident for s in self.states}, initial_graph)
        initial = [
            i for i in _topological(initial_graph, "initialisation", self) if i in needed
        ]
        return static, initial, dynamic

    # -- running ----------------------------------------------------------------------
    def run(
        self,
        batch_size: int = 1,
        *,
        params: Mapping[str, object] | None = None,
        initial: Mapping[str, object] | None = None,
        start_time: float | None = None,
        stop_time: float | None = None,
        return_times: Sequence[float] | None = None,
        return_columns: Iterable[str] | None = None,
    ) -> Simulation:
        """Simulate ``batch_size`` units at once with the model's Euler TIME STEP.

        Parameters
        ----------
        batch_size
            Number of units B.  Every value below may be a scalar (the same for
            every unit) or an array whose leading axis has length B.
        params
            Constant name -> value, replacing the model's equation.  A subscripted
            constant takes one value per element (shape ``dims`` or ``(B, *dims)``), or
            is given element by element (``"loss rate[dec 3]"``; the others keep their
            own values).
        initial
            Stock name -> initial value at the start time (a subscripted stock whole,
            or every one of its elements).
        start_time
            Start here instead of INITIAL TIME (like PySD's ``initial_condition``).
        stop_time
            Stop here instead of FINAL TIME.
        return_times
            Times to record (on the TIME STEP grid); default every SAVEPER.
        return_columns
            Names to record (variables, or elements such as ``"population[dec 3]"``);
            default every stock, auxiliary and constant.
        """
        overrides = {}
        for names, kind in ((params, "constant"), (initial, "stock")):
            elements: dict[str, list] = {}
            for name, value in (names or {}).items():
                var, index = self.element(name, kind)
                if var.kind != kind:
                    raise ModelError(f"'{var.name}' of model '{self.name}' is not a {kind}.")
                if index:
                    elements.setdefault(var.name, []).append((index, value))
                else:
                    overrides[var.ident] = batched(value, self.shape(var.name), batch_size)
            for name, values in elements.items():
                overrides[self.variable(name).ident] = self._by_element(name, kind, values,
                                                                        batch_size)
        if start_time is not None:
            overrides["v_initial_time"] = float(start_time)
        if return_columns is None:
            columns = [(v.name, v, ()) for v in self.variables.values() if v.kind != "lookup"]
        else:
            columns = []
            for name in return_columns:
                var, index = self.element(name)
                label = self.elements(var.name)[int(np.ravel_multi_index(
                    index, self.shape(var.name)))] if index else var.name
                columns.append((label, var, index))
        record = tuple(dict.fromkeys(var.ident for _, var, _ in columns))
        times, values = self.execute(batch_size, overrides, record, stop_time, return_times)
        by_ident = dict(zip(record, values, strict=True))
        return Simulation(
            times, {label: by_ident[var.ident][(slice(None), slice(None)) + index]
                    for label, var, index in columns},
            {label: self.elements(var.name) for label, var, index in columns
             if var.dims and not index})

    def _by_element(self, name: str, kind: str, values, batch_size: int) -> np.ndarray:
        """A subscripted value given element by element: constants start from their own
        value, stocks must be given whole."""
        shape = self.shape(name)
        if kind == "stock" and len({i for i, _ in values}) < int(np.prod(shape)):
            raise ModelError(f"Give every element of the stock '{name}' an initial value, "
                             f"or none: {len(values)} of {int(np.prod(shape))} given.")
        base = self.constant_array(name) if kind == "constant" else np.zeros((1,) + shape)
        array = np.array(np.broadcast_to(base, (batch_size,) + shape))
        for index, value in values:
            array[(slice(None),) + index] = value
        return array

    def execute(
        self,
        batch_size: int,
        overrides: Mapping[str, object],
        record: tuple[str, ...],
        stop_time: float | None = None,
        return_times: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Low-level run by identifiers: returns times (T,) and one (B, T, ...) array per
        recorded identifier.  ``overrides`` maps identifiers of constants, stocks and
        controls to values."""
        kernel = self._kernel(record)
        if kernel is not None:  # the compiled kernel, when it can run this call
            result = kernel.run(batch_size, overrides, stop_time, return_times)
            if result is not None:
                return result
        program = self._program(record)
        due = _every_saveper if return_times is None else _at_times(return_times)
        with np.errstate(all="ignore"):  # NaN and inf are reported per unit, not raised
            times, rows = program.run(overrides, stop_time, due)
        if not rows:
            raise ModelError(f"Model '{self.name}' recorded no time step; check the times.")
        values = [_column([row[k] for row in rows], batch_size) for k in range(len(record))]
        return _rounded(times), values

    def prepare(self, record: Iterable[str]) -> bool:
        """Build (or load from the cache) the compiled kernel that records the identifiers
        ``record``, now and in this process (before worker processes are forked, so that
        they find it built); True when :meth:`execute` will run it rather than NumPy."""
        return self._kernel(tuple(record)) is not None

    def _kernel(self, record: tuple[str, ...]):
        key = ("kernel", record)
        if key not in self._programs:
            from .kernel import kernel_for

            self._program(record)  # the same checks as the NumPy program (validate) first
            self._programs[key] = kernel_for(self, record)
        return self._programs[key]

    def _program(self, record: tuple[str, ...]):
        if record not in self._programs:
            from .codegen import Program

            self._programs[record] = Program(self, record)
        return self._programs[record]


def _rounded(times: list[tuple[float, float]]) -> np.ndarray:
    """Saved times rounded to the precision of their TIME STEP, as PySD labels its rows."""
    stamps = np.array([t for t, _ in times], dtype=float)
    decimals = -np.trunc(np.log10(np.array([dt for _, dt in times]) * TIME_RPREC)).astype(int)
    for places in np.unique(decimals):
        chosen = decimals == places
        stamps[chosen] = np.round(stamps[chosen], places)
    return stamps


def _column(values: list, batch_size: int) -> np.ndarray:
    """One variable's recorded values over time as an array (B, T, *dims)."""
    try:
        stacked = np.asarray(values, dtype=float)  # (T,) when scalar, (T, B|1, *dims) else
    except ValueError:  # scalar at some times, one value per unit at others
        return np.stack([_batched(v, batch_size) for v in values], axis=1)
    if stacked.ndim == 1:
        return np.broadcast_to(stacked, (batch_size, len(values)))
    return np.broadcast_to(np.moveaxis(stacked, 0, 1),
                           (batch_size, len(values)) + stacked.shape[2:])


def _batched(value, batch_size: int) -> np.ndarray:
    """A recorded value with its batch axis spelt out: () or (B|1, *dims) -> (B, *dims)."""
    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return np.full(batch_size, value)
    return np.broadcast_to(value, (batch_size,) + value.shape[1:])


def _every_saveper(time: float, t0: float, dt: float, saveper: float) -> bool:
    """PySD's default saving rule: every SAVEPER from the initial time."""
    prec = dt * TIME_RPREC
    delay = time - t0
    return delay % saveper < prec or -delay % saveper < prec


def _at_times(times: Sequence[float]):
    """Saving rule for explicit times, as PySD's ``return_timestamps``."""
    pending = sorted(float(t) for t in np.atleast_1d(times))

    def due(time: float, t0: float, dt: float, saveper: float) -> bool:
        prec = dt * TIME_RPREC
        while pending and pending[0] < time - prec:
            pending.pop(0)  # not on the TIME STEP grid: never reached
        if pending and abs(time - pending[0]) <= prec:
            pending.pop(0)
            return True
        return False

    return due


def _topological(graph: Mapping[str, Assignment | State], what: str, model) -> list[str]:
    """Order identifiers so that each comes after the ones it depends on."""
    sorter = graphlib.TopologicalSorter(
        {ident: [d for d in node.deps if d in graph] for ident, node in graph.items()}
    )
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as error:
        cycle = " -> ".join(_display(model, i) for i in error.args[1])
        raise ModelError(
            f"Model '{model.name}' has a circular {what}: {cycle}."
        ) from None


def closure(roots: set[str], graph: Mapping[str, Assignment]) -> set[str]:
    """``roots`` and every identifier of ``graph`` they depend on, directly or not."""
    seen, todo = set(), list(roots)
    while todo:
        ident = todo.pop()
        if ident in seen or ident not in graph:
            continue
        seen.add(ident)
        todo.extend(graph[ident].deps)
    return seen


def _display(model: BatchModel, ident: str) -> str:
    for var in model.variables.values():
        if var.ident == ident:
            return var.name
    return ident
