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

from typing import TYPE_CHECKING

import numpy as np

from . import arrays, functions
from .program import TIME_RPREC, Assignment, closure

if TYPE_CHECKING:
    from .program import BatchModel, State

#: Where each Runge-Kutta stage evaluates the rates: (fraction of the step, the stage whose
#: rates move the states there).
RK4_STAGES = ((0.5, "k1"), (0.5, "k2"), (1.0, "k3"))


class Program:
    """The generated Python function of one BatchModel, one set of recorded identifiers,
    one set of identifiers read from per-unit tables and one integration method."""

    def __init__(self, model: BatchModel, record: tuple[str, ...],
                 timed: frozenset[str] = frozenset(), method: str = "euler"):
        self.source = _generate(model, record, timed, method)
        namespace = {"np": np, "F": functions, "V": arrays, "A": model.arrays,
                     "RPREC": TIME_RPREC}
        exec(compile(self.source, f"<sdfit program of {model.name}>", "exec"), namespace)
        self.run = namespace["run"]
        self._statics = namespace["statics"]

    def static_value(self, ident: str):
        return self._statics({})[ident]


def _generate(model: BatchModel, record: tuple[str, ...], timed: frozenset[str],
              method: str) -> str:
    """Source of ``run(ov, stop, due, inp, noise)`` and ``statics(ov)`` for ``model``."""
    static, initial, dynamic = model.schedule_with(timed)
    states = {s.ident: s for s in model.states}
    lines = ["def statics(ov):"]
    for ident in static:
        lines += _overridable(model.assignments[ident], "    ")
    lines += ["    return {" + ", ".join(f"'{i}': {i}" for i in static) + "}", ""]

    lines += ["def run(ov, stop, due, inp, noise):"]
    lines += ["    S = statics(ov)"]
    lines += [f"    {i} = S['{i}']" for i in static]
    lines += _start_time(model, static, dynamic, timed)
    lines += ["    t0 = time"]
    for ident in initial:
        if ident in states:
            lines += _overridable(states[ident].initial, "    ")
        else:
            # ACTIVE INITIAL takes its initial value while the model initialises
            assignment = model.initials.get(ident, model.assignments[ident])
            lines.append(f"    {ident} = {_value(assignment, timed)}")
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
    lines += [f"        {i} = {_value(model.assignments[i], timed)}"
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
    lines += [f"        n_{s.ident} = {s.update.expr}" for s in discrete]
    if continuous:
        lines += _runge_kutta(model, continuous, dynamic, timed)
    if moving:
        lines.append(
            "        " + "".join(f"{s.ident}, " for s in moving) + "= "
            + "".join(f"n_{s.ident}, " for s in moving)
        )
    lines += ["        time = time + dt"]
    if model.random:
        lines += ["        noise.step += 1"]
    lines += ["    return times, rows", ""]
    return "\n".join(lines)


def _runge_kutta(model: BatchModel, continuous: list[State], dynamic: list[str],
                 timed: frozenset[str]) -> list[str]:
    """The classical RK4 step of the continuous states: rates at the step's start (k1),
    twice at its middle (k2, k3) and at its end (k4), each after the auxiliaries that
    the rates read and that move within the step are computed again."""
    idents = {s.ident for s in continuous}
    moving = _moving_within_step(model, idents, dynamic)
    recompute = [i for i in dynamic if i in moving and i in closure(
        set().union(*(s.rate.deps for s in continuous)), model.assignments)]
    lines = ["        t_step = time"]
    lines += [f"        s0_{s.ident} = {s.ident}" for s in continuous]
    lines += [f"        k1_{s.ident} = {s.rate.expr}" for s in continuous]
    for stage, (fraction, previous) in enumerate(RK4_STAGES, start=2):
        lines += [f"        time = t_step + {fraction} * dt"]
        lines += [f"        {s.ident} = {_advance(s, f's0_{s.ident}', previous, fraction)}"
                  for s in continuous]
        lines += [f"        {i} = {_value(model.assignments[i], timed)}" for i in recompute]
        lines += [f"        k{stage}_{s.ident} = {s.rate.expr}" for s in continuous]
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
                timed: frozenset[str]) -> list[str]:
    """Statements setting ``time`` to INITIAL TIME.  An INITIAL TIME that depends on
    Time is evaluated at 0, before the clock starts, as PySD does."""
    if "v_initial_time" in static:
        return ["    time = v_initial_time"]
    needed = closure({"v_initial_time"}, model.assignments)
    lines = ["    time = F.real(0.0)"]
    lines += [f"    {i} = {_value(model.assignments[i], timed)}"
              for i in dynamic if i in needed]
    return lines + ["    time = F.real(ov['v_initial_time'] if 'v_initial_time' in ov else "
                    "v_initial_time)"]


def _value(assignment: Assignment, timed: frozenset[str]) -> str:
    """The expression of a dynamic assignment: a per-unit table read at the current time
    for the identifiers in ``timed``."""
    if assignment.target in timed:
        return f"inp['{assignment.target}'](time)"
    return assignment.expr


def _overridable(assignment: Assignment, indent: str) -> list[str]:
    target = assignment.target
    return [
        f"{indent}{target} = F.real(ov['{target}'] if '{target}' in ov else "
        f"({assignment.expr}))",
    ]
