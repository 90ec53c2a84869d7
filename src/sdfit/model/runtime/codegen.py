"""Generate the Python function that runs a :class:`~.program.BatchModel`.

``statics(ov)`` computes what depends on neither time nor any state, once per
run; ``run(ov, stop, due, inp, noise)`` initialises the states (ACTIVE INITIAL
taking its initial value meanwhile) and steps them exactly as PySD does:
compute the auxiliaries, save if due, stop at FINAL TIME, then move every
state one TIME STEP on — with Euler's method, or with the classical
fourth-order Runge-Kutta method, which evaluates the rates of the continuous
states at three more points of the step (the auxiliaries they need computed
again at each).  ``ov`` overrides constants, controls and initial states by
identifier; ``inp`` holds per-unit tables read at the current time; ``noise``
draws the random numbers of the current step.

Every scalar of the program is a NumPy float, never a Python float, so that a
division by zero or a logarithm of a negative number in a branch not taken
gives inf or NaN (discarded by the branch) instead of raising.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import numpy as np

from ...exceptions import SdfitError
from . import arrays, functions, validate
from .program import TIME_RPREC, Assignment, closure, engine_error

if TYPE_CHECKING:
    from .program import BatchModel, State

#: Where each Runge-Kutta stage evaluates the rates: (fraction of the step, the stage whose
#: rates move the states there).
RK4_STAGES = ((0.5, "k1"), (0.5, "k2"), (1.0, "k3"))


class Program:
    """The generated Python function of one BatchModel, one set of recorded identifiers,
    one set of identifiers replaced by per-unit tables and one integration method."""

    def __init__(self, model: BatchModel, record: tuple[str, ...],
                 tables: frozenset[str] = frozenset(), method: str = "euler"):
        self.source = _generate(model, record, Tables(model, tables), method)
        namespace = {"np": np, "F": functions, "V": arrays, "A": model.arrays,
                     "RPREC": TIME_RPREC}
        # sdfit's own source: model text is in it only as validated identifiers and
        # repr-written numbers (see _generate), and the whole program is checked against
        # a whitelist of node types, names and attributes before it runs
        validate.check_program(self.source, model.path, namespace)
        namespace["__builtins__"] = validate.BUILTINS  # nothing else of Python's
        exec(compile(self.source, f"<sdfit program of {model.name}>", "exec"), namespace)
        self.run = namespace["run"]
        self._statics = namespace["statics"]

    def static_value(self, ident: str):
        return self.statics({})[ident]

    def statics(self, overrides) -> dict:
        """Every static value under ``overrides``.

        Raises
        ------
        EngineError
            The program failed (not the model's fault: sdfit's).
        """
        try:
            with np.errstate(all="ignore"):  # inf and NaN are values, as in a run
                return self._statics(overrides)
        except SdfitError:
            raise
        except Exception as error:
            raise engine_error(error) from error


class Tables:
    """Where per-unit tables (``inp``) replace model variables: a constant or data variable
    is read at the current time; a lookup's calls read the table at their argument."""

    def __init__(self, model: BatchModel, idents: frozenset[str]):
        kinds = {v.ident: v.kind for v in model.variables.values()}
        lookups = {i for i in idents if kinds.get(i) == "lookup"}
        self.keys = {f"{i}_x": i for i in lookups}  # a lookup's x points, A[ident_x]
        # what reads a replaced lookup changes over time like what reads a replaced constant
        self.timed = frozenset(idents - lookups) | {
            i for i, a in model.assignments.items() if self._reads_lookup(a.expr)}
        self.constants = idents - lookups

    def _reads_lookup(self, text: str) -> bool:
        return any(f"A['{key}']" in text for key in self.keys)

    def value(self, assignment: Assignment) -> str:
        """The expression of an assignment, with the tables in."""
        if assignment.target in self.constants:
            return f"F.look(inp['{assignment.target}'], time)"
        return self.text(assignment.expr)

    def text(self, expr: str) -> str:
        """``expr`` with each call of a replaced lookup, ``F.lookup(x, A['<ident>_x'], ...)``,
        made ``F.look(inp['<ident>'], x)``."""
        if not self._reads_lookup(expr):
            return expr
        keys = self.keys

        class Replace(ast.NodeTransformer):
            def visit_Call(self, node):
                self.generic_visit(node)
                func, args = node.func, node.args
                if (isinstance(func, ast.Attribute) and func.attr == "lookup"
                        and isinstance(func.value, ast.Name) and func.value.id == "F"
                        and len(args) >= 3 and isinstance(args[1], ast.Subscript)
                        and isinstance(args[1].slice, ast.Constant)
                        and args[1].slice.value in keys):
                    table = ast.Subscript(ast.Name("inp", ast.Load()),
                                          ast.Constant(keys[args[1].slice.value]), ast.Load())
                    look = ast.Attribute(ast.Name("F", ast.Load()), "look", ast.Load())
                    return ast.Call(look, [table, args[0]], [])
                return node

        return ast.unparse(Replace().visit(ast.parse(expr, mode="eval")))


def _generate(model: BatchModel, record: tuple[str, ...], tables: Tables, method: str) -> str:
    """Source of ``run(ov, stop, due, inp, noise)`` and ``statics(ov)`` for ``model``."""
    static, initial, dynamic = model.schedule_with(tables.timed)
    states = {s.ident: s for s in model.states}
    lines = ["def statics(ov):"]
    for ident in static:
        lines += _overridable(model.assignments[ident], "    ")
    lines += ["    return {" + ", ".join(f"'{i}': {i}" for i in static) + "}", ""]

    lines += ["def run(ov, stop, due, inp, noise):"]
    lines += ["    S = statics(ov)"]
    lines += [f"    {i} = S['{i}']" for i in static]
    lines += _start_time(model, static, dynamic, tables)
    lines += ["    t0 = time"]
    for ident in initial:
        if ident in states:
            state = states[ident]
            lines += _overridable(Assignment(ident, tables.text(state.initial.expr),
                                             state.initial.deps), "    ")
        else:
            # ACTIVE INITIAL takes its initial value while the model initialises
            assignment = model.initials.get(ident, model.assignments[ident])
            lines.append(f"    {ident} = {tables.value(assignment)}")
    values = "(" + "".join(f"{i}, " for i in record) + ")"
    # states that never change after the start (orders, INITIAL) need no update
    moving = [s for s in model.states if s.update.expr != s.ident]
    continuous = [s for s in moving if s.rate is not None and method != "euler"]
    discrete = [s for s in moving if s not in continuous]
    # each step computes only what the states, the recorded values and the clock read:
    # a fit records its targets, so reporting variables cost it nothing
    rate_deps = [s.rate.deps for s in continuous]
    needed = closure({*record, "v_time_step", "v_saveper", "v_final_time"}.union(
        *(s.update.deps for s in discrete), *rate_deps), model.assignments)
    lines += ["    times, rows = [], []", "    while True:"]
    lines += [f"        {i} = {tables.value(model.assignments[i])}"
              for i in dynamic if i in needed]
    lines += [
        "        dt = v_time_step",
        "        if due(time, t0, dt, v_saveper):",
        "            times.append((time, dt))",
        f"            rows.append({values})",
        "        end = v_final_time if stop is None else stop",
        "        if not time + dt * RPREC < end:",
        "            break",
    ]
    # discrete states move from the values at the step's start, before any stage
    lines += [f"        n_{s.ident} = {tables.text(s.update.expr)}" for s in discrete]
    if continuous:
        lines += _runge_kutta(model, continuous, dynamic, tables)
    if moving:
        lines.append(
            "        " + "".join(f"{s.ident}, " for s in moving) + "= "
            + "".join(f"n_{s.ident}, " for s in moving)
        )
    lines += ["        time = time + dt"]
    if model.random:
        lines += ["        F.tick(noise)"]
    lines += ["    return times, rows", ""]
    return "\n".join(lines)


def _runge_kutta(model: BatchModel, continuous: list[State], dynamic: list[str],
                 tables: Tables) -> list[str]:
    """The classical RK4 step of the continuous states: rates at the step's start (k1),
    twice at its middle (k2, k3) and at its end (k4), each after the auxiliaries that
    the rates read and that move within the step are computed again."""
    idents = {s.ident for s in continuous}
    moving = _moving_within_step(model, idents, dynamic)
    recompute = [i for i in dynamic if i in moving and i in closure(
        set().union(*(s.rate.deps for s in continuous)), model.assignments)]
    lines = ["        t_step = time"]
    lines += [f"        s0_{s.ident} = {s.ident}" for s in continuous]
    lines += [f"        k1_{s.ident} = {tables.text(s.rate.expr)}" for s in continuous]
    for stage, (fraction, previous) in enumerate(RK4_STAGES, start=2):
        lines += [f"        time = t_step + {fraction} * dt"]
        lines += [f"        {s.ident} = {_advance(s, f's0_{s.ident}', previous, fraction)}"
                  for s in continuous]
        lines += [f"        {i} = {tables.value(model.assignments[i])}" for i in recompute]
        lines += [f"        k{stage}_{s.ident} = {tables.text(s.rate.expr)}"
                  for s in continuous]
    for s in continuous:
        i = s.ident
        mean = f"(k1_{i} + 2 * k2_{i} + 2 * k3_{i} + k4_{i}) / 6"
        combined = (f"F.advance(s0_{i}, {mean}, dt)" if s.staged
                    else f"s0_{i} + {mean} * dt")
        lines.append(f"        n_{i} = {s.limit.format(combined)}")
    return lines + ["        time = t_step"]


def _advance(state: State, start: str, rate: str, fraction: float) -> str:
    """The state moved from ``start`` along the rates of stage ``rate``."""
    if state.staged:  # the stage axis first: F.advance aligns the value axes
        return f"F.advance({start}, {rate}_{state.ident}, {fraction} * dt)"
    return f"{start} + {rate}_{state.ident} * ({fraction} * dt)"


def _moving_within_step(model: BatchModel, continuous: set[str],
                        dynamic: list[str]) -> set[str]:
    """Dynamic auxiliaries that change inside a step: those reading time or a continuous
    state, directly or not (the outputs of discrete states keep their step-start value)."""
    moving = {"time", *continuous}
    for ident in dynamic:
        if model.assignments[ident].deps & moving:
            moving.add(ident)
    return moving


def _start_time(model: BatchModel, static: list[str], dynamic: list[str],
                tables: Tables) -> list[str]:
    """Statements setting ``time`` to INITIAL TIME.  An INITIAL TIME that depends on
    Time is evaluated at 0, before the clock starts, as PySD does."""
    if "v_initial_time" in static:
        return ["    time = v_initial_time"]
    needed = closure({"v_initial_time"}, model.assignments)
    lines = ["    time = F.real(0.0)"]
    lines += [f"    {i} = {tables.value(model.assignments[i])}"
              for i in dynamic if i in needed]
    return lines + ["    time = F.real(ov['v_initial_time'] if 'v_initial_time' in ov else "
                    "v_initial_time)"]


def _overridable(assignment: Assignment, indent: str) -> list[str]:
    target = assignment.target
    return [
        f"{indent}{target} = F.real(ov['{target}'] if '{target}' in ov else "
        f"({assignment.expr}))",
    ]
