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

import numpy as np

from ...exceptions import EngineError, ModelError, SdfitError

# TIME_RPREC and the saving rules are imported from here by the kernel too
from .saving import TIME_RPREC, _at_times, _column, _every_saveper, _rounded  # noqa: F401
from .variables import Simulation, Variable, VariableTable, batched

#: Identifiers of the four control variables in every program.
CONTROLS = ("v_initial_time", "v_final_time", "v_time_step", "v_saveper")

#: Integration methods: PySD's explicit Euler, and the classical fourth-order Runge-Kutta.
METHODS = ("euler", "rk4")


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
    its value one TIME STEP later with Euler's method (it may use ``dt``).  A
    continuous state also has its ``rate`` (its derivative over time), which RK4
    integrates; ``limit`` (a template such as ``np.maximum({}, 0)``) then bounds
    the result as ``update`` does.  ``staged`` states keep stages on a leading axis.
    A state without a rate (DELAY FIXED, SAMPLE IF TRUE, DELAY N...) is discrete: it
    moves once per TIME STEP, from the values at the step's start, whatever the method
    (as Vensim does).
    """

    ident: str
    initial: Assignment
    update: Assignment
    rate: Assignment | None = None
    limit: str = "{}"
    staged: bool = False


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
    method: str = "euler"  # the integration method the model file asks for
    random_sites: int = 0  # calls of random functions (each draws its own numbers)
    _programs: dict = field(default_factory=dict, repr=False, compare=False)
    _schedules: dict = field(default_factory=dict, repr=False, compare=False)

    # -- pickling: generated functions are rebuilt in each process ----------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_programs"], state["_schedules"] = {}, {}
        return state

    def __repr__(self) -> str:
        kinds = {}
        for v in self.variables.values():
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        counts = ", ".join(f"{n} {_plural(k, n)}" for k, n in kinds.items())
        return (f"BatchModel('{self.name}': {counts}; {self.method}"
                + (f", {self.random_sites} random functions" if self.random else "") + ")")

    @property
    def random(self) -> bool:
        """Whether the model draws random numbers (its runs then depend on ``seed`` and
        ``streams``)."""
        return self.random_sites > 0

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
    @property
    def static_idents(self) -> frozenset[str]:
        """Assignments that depend on neither time nor any state: computed once per run."""
        return self.statics_with()

    def statics_with(self, timed: frozenset[str] = frozenset()) -> frozenset[str]:
        """Static assignments when the identifiers ``timed`` change over time (constants
        replaced by per-unit tables).  An ACTIVE INITIAL is never static: it changes when
        initialisation ends."""
        key = ("static", timed)
        if key not in self._schedules:
            state_idents = {s.ident for s in self.states}
            dynamic: set[str] = set(timed)
            for ident in _topological(self.assignments, "assignment", self):
                deps = self.assignments[ident].deps
                if ("time" in deps or deps & state_idents or deps & dynamic
                        or ident in self.initials):
                    dynamic.add(ident)
            self._schedules[key] = frozenset(self.assignments) - dynamic
        return self._schedules[key]

    @property
    def schedule(self) -> tuple[list[str], list[str], list[str]]:
        """(static, initial, dynamic) statement orders."""
        return self.schedule_with()

    def schedule_with(self, timed: frozenset[str] = frozenset()
                      ) -> tuple[list[str], list[str], list[str]]:
        """(static, initial, dynamic) statement orders when ``timed`` change over time."""
        key = ("schedule", timed)
        if key not in self._schedules:
            statics = self.statics_with(timed)
            full = _topological(self.assignments, "assignment", self)
            static = [i for i in full if i in statics]
            dynamic = [i for i in full if i not in statics]
            # initialisation: state initial values and the dynamic auxiliaries they need
            initial_graph: dict[str, Assignment] = {
                i: self.initials.get(i, self.assignments[i]) for i in dynamic
            } | {s.ident: s.initial for s in self.states}
            needed = closure({s.ident for s in self.states}, initial_graph)
            initial = [i for i in _topological(initial_graph, "initialisation", self)
                       if i in needed]
            self._schedules[key] = (static, initial, dynamic)
        return self._schedules[key]

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
        inputs: Mapping[str, object] | None = None,
        seed: int = 0,
        method: str | None = None,
    ) -> Simulation:
        """Simulate ``batch_size`` units at once.

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
            default every stock, auxiliary and constant.  Values are stored under the
            names as given.
        inputs
            Constant, data variable or lookup name -> :class:`~.inputs.UnitTable`: one
            piecewise-linear table per unit, read at the current time (or, for a lookup,
            at its argument).
        seed
            Random functions draw from streams that depend only on ``seed``, the unit,
            the call and the time step.
        method
            ``"euler"`` or ``"rk4"``; default the model's own (:attr:`method`).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
                or batch_size < 1:
            raise ModelError(f"The batch size of {self.name}.run must be a whole number of "
                             f"units >= 1; got {batch_size!r}.")
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
                    overrides[var.ident] = batched(value, self.shape(var.name), batch_size,
                                                   var.name)
            for name, values in elements.items():
                overrides[self.variable(name).ident] = self._by_element(name, kind, values,
                                                                        batch_size)
        if start_time is not None:
            overrides["v_initial_time"] = float(start_time)
        if return_columns is None:
            columns = [(v.name, v, ()) for v in self.variables.values() if v.kind != "lookup"]
        else:
            columns = [(str(name), *self.element(name)) for name in return_columns]
        record = tuple(dict.fromkeys(var.ident for _, var, _ in columns))
        tables = {self.variable(name, "input").ident: table
                  for name, table in (inputs or {}).items()}
        times, values = self.execute(batch_size, overrides, record, stop_time, return_times,
                                     inputs=tables, seed=seed, method=method)
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
        *,
        inputs: Mapping[str, object] | None = None,
        streams: Sequence[int] | np.ndarray | None = None,
        seed: int = 0,
        method: str | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Low-level run by identifiers: returns times (T,) and one (B, T, ...) array per
        recorded identifier.

        Parameters
        ----------
        overrides
            Identifiers of constants, stocks and controls -> values.
        inputs
            Identifier -> :class:`~.inputs.UnitTable` (R = B or 1 rows): a constant or
            data variable becomes ``table(time)`` at each step, a lookup ``table(x)``.
        streams
            The unit identity of each row (default ``0 .. B-1``): random functions give
            rows of the same stream the same draws (common random numbers).
        seed
            Draws depend only on (seed, stream, call site, time step).
        method
            ``"euler"`` or ``"rk4"``; None is the model's own.

        Raises
        ------
        EngineError
            The program failed for a reason other than bad input (fit() then falls back
            to PySD's runtime under ``engine="auto"``).
        """
        method = self._method(method)
        overrides = dict(overrides)
        tables = self._inputs(inputs or {}, overrides)
        noise = None
        if self.random:  # imported only then: it needs scipy.special (0.15 s)
            from .noise import Noise

            noise = Noise(seed, np.arange(batch_size) if streams is None else streams,
                          batch_size)
        due = _every_saveper if return_times is None else _at_times(return_times)
        try:
            if not tables and noise is None and method == "euler":
                kernel = self._kernel(record)
                result = None if kernel is None else kernel.run(batch_size, overrides,
                                                                stop_time, return_times)
                if result is not None:  # the compiled kernel could run this call
                    return result
            program = self._program(record, frozenset(tables), method)
            with np.errstate(all="ignore"):  # NaN and inf are reported per unit, not raised
                times, rows = program.run(overrides, stop_time, due, tables, noise)
        except SdfitError:
            raise
        except Exception as error:
            raise engine_error(error) from error
        if not rows:
            raise ModelError(f"Model '{self.name}' recorded no time step; check the times.")
        values = [_column([row[k] for row in rows], batch_size) for k in range(len(record))]
        return _rounded(times), values

    def prepare(self, record: Iterable[str]) -> bool:
        """Build (or load from the cache) the compiled kernel that records the identifiers
        ``record``, now and in this process (before worker processes are forked, so that
        they find it built); True when :meth:`execute` will run it rather than NumPy."""
        return self._kernel(tuple(record)) is not None

    def compiled(self, record: Iterable[str], method: str | None = None):
        """The compiled kernel :meth:`execute` runs for ``record`` under ``method`` when no
        per-unit input tables are given, or None (the NumPy program runs)."""
        if self.random or self._method(method) != "euler":
            return None
        return self._kernel(tuple(record))

    def _kernel(self, record: tuple[str, ...]):
        key = ("kernel", record)
        if key not in self._programs:
            from .kernel import kernel_for

            self._program(record)  # the same checks as the NumPy program (validate) first
            self._programs[key] = kernel_for(self, record)
        return self._programs[key]

    def _method(self, method: str | None) -> str:
        method = self.method if method is None else str(method).lower()
        if method not in METHODS:
            raise ModelError(f"Unknown integration method '{method}'; choose one of "
                             f"{', '.join(METHODS)}.")
        return method

    def _inputs(self, inputs: Mapping[str, object], overrides: dict) -> dict[str, object]:
        """Per-unit tables by identifier, checked: each replaces a constant, a data variable
        or a lookup without subscripts (and any override of it)."""
        by_ident = {v.ident: v for v in self.variables.values()}
        for ident in inputs:
            var = by_ident.get(ident)
            if var is None or var.kind in ("stock", "control") or var.dims:
                what = "unknown" if var is None else f"'{var.name}'"
                raise ModelError(f"Per-unit tables replace constants, data variables and "
                                 f"lookups without subscripts; {what} in model "
                                 f"'{self.name}' is not one.")
            overrides.pop(ident, None)
        return dict(inputs)

    def _program(self, record: tuple[str, ...], timed: frozenset[str] = frozenset(),
                 method: str = "euler"):
        key = (record, timed, method)
        if key not in self._programs:
            from .codegen import Program

            self._programs[key] = Program(self, record, timed, method)
        return self._programs[key]


def engine_error(error: Exception) -> EngineError:
    """The batched engine's own failure, in one sentence."""
    reason = " ".join(str(error).split())[:200]
    return EngineError(f"{type(error).__name__}: {reason}" if reason else type(error).__name__)


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


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return word[:-1] + "ies" if word.endswith("y") else word + "s"
