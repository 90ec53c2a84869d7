"""Generate the Python function that runs a :class:`~.program.BatchModel`.

``statics(ov)`` computes what depends on neither time nor any state, once per
run; ``run(ov, stop, due)`` initialises the states (ACTIVE INITIAL taking its
initial value meanwhile) and steps them with Euler's method exactly as PySD
does: compute the auxiliaries, save if due, stop at FINAL TIME, then move every
state one TIME STEP on.  ``ov`` overrides constants, controls and initial
states by identifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import arrays, functions, validate
from .program import TIME_RPREC, Assignment, closure

if TYPE_CHECKING:
    from .program import BatchModel


class Program:
    """The generated Python function of one BatchModel and one set of recorded identifiers."""

    def __init__(self, model: BatchModel, record: tuple[str, ...]):
        self.source = _generate(model, record)
        namespace = {"np": np, "F": functions, "V": arrays, "A": model.arrays,
                     "RPREC": TIME_RPREC}
        validate.check_program(self.source, model.path, namespace)  # before it runs
        namespace["__builtins__"] = validate.BUILTINS  # nothing else of Python's
        exec(compile(self.source, f"<sdfit program of {model.name}>", "exec"), namespace)
        self.run = namespace["run"]
        self._statics = namespace["statics"]

    def static_value(self, ident: str):
        return self._statics({})[ident]

    def statics(self, overrides) -> dict:
        """Every static value under ``overrides``."""
        return self._statics(overrides)


def _generate(model: BatchModel, record: tuple[str, ...]) -> str:
    """Source of ``run(ov, stop, due)`` and ``statics(ov)`` for ``model``."""
    static, initial, dynamic = model.schedule
    states = model.states
    state_idents = {s.ident for s in states}
    lines = ["def statics(ov):"]
    for ident in static:
        lines += _overridable(model.assignments[ident], "    ")
    lines += ["    return {" + ", ".join(f"'{i}': {i}" for i in static) + "}", ""]

    lines += ["def run(ov, stop, due):"]
    lines += ["    S = statics(ov)"]
    lines += [f"    {i} = S['{i}']" for i in static]
    lines += _start_time(model, static, dynamic)
    lines += ["    t0 = time"]
    for ident in initial:
        if ident in state_idents:
            state = next(s for s in states if s.ident == ident)
            lines += _overridable(state.initial, "    ")
        else:
            # ACTIVE INITIAL takes its initial value while the model initialises
            assignment = model.initials.get(ident, model.assignments[ident])
            lines.append(f"    {ident} = {assignment.expr}")
    values = "(" + "".join(f"{i}, " for i in record) + ")"
    # states that never change after the start (orders, INITIAL) need no update
    moving = [s for s in states if s.update.expr != s.ident]
    # each step computes only what the states, the recorded values and the clock read:
    # a fit records its targets, so reporting variables cost it nothing
    needed = closure({*record, "v_time_step", "v_saveper", "v_final_time"}.union(
        *(s.update.deps for s in moving)), model.assignments)
    lines += ["    times, rows = [], []", "    while True:"]
    lines += [f"        {i} = {model.assignments[i].expr}" for i in dynamic if i in needed]
    lines += [
        "        dt = v_time_step",
        "        if due(time, t0, dt, v_saveper):",
        "            times.append((time, dt))",
        f"            rows.append({values})",
        "        end = v_final_time if stop is None else stop",
        "        if not time + dt * RPREC < end:",
        "            break",
    ]
    lines += [f"        n_{s.ident} = {s.update.expr}" for s in moving]
    if moving:
        lines.append(
            "        " + "".join(f"{s.ident}, " for s in moving) + "= "
            + "".join(f"n_{s.ident}, " for s in moving)
        )
    lines += ["        time = time + dt", "    return times, rows", ""]
    return "\n".join(lines)


def _start_time(model: BatchModel, static: list[str], dynamic: list[str]) -> list[str]:
    """Statements setting ``time`` to INITIAL TIME.  An INITIAL TIME that depends on
    Time is evaluated at 0, before the clock starts, as PySD does."""
    if "v_initial_time" in static:
        return ["    time = v_initial_time"]
    needed = closure({"v_initial_time"}, model.assignments)
    lines = ["    time = 0.0"]
    lines += [f"    {i} = {model.assignments[i].expr}" for i in dynamic if i in needed]
    return lines + ["    time = ov['v_initial_time'] if 'v_initial_time' in ov else "
                    "v_initial_time"]


def _overridable(assignment: Assignment, indent: str) -> list[str]:
    target = assignment.target
    return [
        f"{indent}{target} = ov['{target}'] if '{target}' in ov else ({assignment.expr})",
    ]
