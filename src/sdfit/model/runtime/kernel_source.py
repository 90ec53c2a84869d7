"""Write the C source of a compiled kernel from a :class:`~.program.BatchModel`.

The kernel runs the same program as :mod:`.codegen` (same statements, same order, same
Euler steps) but fused: units are processed in blocks of ``LANES``; for each block and
each time step one loop over the lanes computes every statement of a unit in local
variables (registers), records what is due and stores the new states, so no array is
allocated per statement and the compiler vectorises across units.  Statics and the
initial states are computed once per block in the same way.

Each expression of the program is re-read with :mod:`ast` and translated node by node:
only numbers, the program's own identifiers and the operators and built-ins listed here
are accepted, and anything else raises :class:`KernelUnsupported` (the NumPy program then
runs instead).  The C source holds no text of the model: variables become ``x0``,
``x1``, ..., numbers are written from their float values, tables are offsets into one
array passed at run time.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .kernel_translate import KernelUnsupported, Translator, stage_count, stage_updates
from .program import CONTROLS, closure

if TYPE_CHECKING:
    from .program import BatchModel

#: Units per block: enough for the compiler's vector loops, small enough to stay in L1.
LANES = 64

#: The C helpers every kernel includes (the built-ins of :mod:`.functions`, in C).
HEADER = (Path(__file__).parent / "kernel.h").read_text()


@dataclass
class KernelSource:
    """The C source of one kernel and what its caller must pass it."""

    text: str
    overridable: tuple[str, ...]  # identifiers an override may replace, by input slot
    tables: np.ndarray  # every lookup table's points, concatenated
    record: tuple[str, ...]


def generate(model: BatchModel, record: tuple[str, ...]) -> KernelSource:
    """The kernel of ``model`` recording ``record``.

    Raises
    ------
    KernelUnsupported
        The model has subscripts, time-dependent controls or constructs the kernel does
        not translate.
    """
    if any(v.dims for v in model.variables.values()):
        raise KernelUnsupported("subscripts")
    static, initial, dynamic = _stable_schedule(model)
    if not set(CONTROLS) <= set(static):
        raise KernelUnsupported("controls that change over time")
    states = {s.ident: s for s in model.states}
    known = set(model.assignments) | set(states)
    if not set(record) <= known:
        raise KernelUnsupported("recording something that is not a variable")
    names = {ident: f"x{i}" for i, ident in enumerate(sorted(known))}
    names |= {"time": "time", "dt": "dt"}
    translate = Translator(names, model.arrays)
    for ident, state in states.items():
        count = stage_count(state, states)
        if count is not None:
            translate.stages[ident] = [f"{names[ident]}_{k}" for k in range(count)]
    if set(record) & set(translate.stages):
        raise KernelUnsupported("recording a DELAY or SMOOTH pipeline")
    # an override replaces a constant or a stock's initial value, never a pipeline
    overridable = tuple(static) + tuple(i for i in states if i not in static
                                        and i not in translate.stages)
    slot = {ident: k for k, ident in enumerate(overridable)}

    moving = [s for s in model.states if s.update.expr != s.ident]
    needed = closure({*record, *CONTROLS}.union(*(s.update.deps for s in moving)),
                     model.assignments)
    step_dynamic = [i for i in dynamic if i in needed]
    used = set(record).union(*(model.assignments[i].deps for i in step_dynamic),
                             *(s.update.deps for s in moving))
    recorded_dynamic = [i for i in dict.fromkeys(record) if i in step_dynamic]
    # the rows of the block's buffer (W values each), by C local: statics the steps read,
    # the states (a row per stage of a pipeline) and the auxiliaries to record
    held = [names[i] for i in static if i in used]
    for ident in states:
        held += translate.stages.get(ident, [names[ident]])
    rows = {local: k for k, local in enumerate(held + [names[i] for i in recorded_dynamic])}

    def store(local: str) -> str:
        return f"buf[{rows[local]} * W + i] = {local};"

    def overridden(ident: str, expr: str) -> str:
        k = slot[ident]
        return (f"double {names[ident]} = in[{k}] ? in[{k}][u * stride[{k}]] : "
                f"{translate.expression(expr)};")

    start = [overridden(i, model.assignments[i].expr) for i in static]
    for ident in initial:
        if ident in translate.stages:  # F.stages(value, order): every stage starts at value
            value = translate.node(ast.parse(states[ident].initial.expr, mode="eval")
                                   .body.args[0])
            start += [f"double {local} = {value};" for local in translate.stages[ident]]
        elif ident in states:
            start.append(overridden(ident, states[ident].initial.expr))
        else:  # ACTIVE INITIAL takes its initial value while the model initialises
            expr = model.initials.get(ident, model.assignments[ident]).expr
            start.append(f"double {names[ident]} = {translate.expression(expr)};")
    start += [store(local) for local in held]

    # one straight-line loop per step, which the C compiler vectorises across units: the
    # values due are copied out around it (states and statics before their update,
    # auxiliaries after), and the states move on even after the last step (unread)
    step = [f"double {local} = buf[{rows[local]} * W + i];" for local in held]
    step += [f"double {names[i]} = {translate.expression(model.assignments[i].expr)};"
             for i in step_dynamic]
    step += [store(names[i]) for i in recorded_dynamic]
    updates = []
    for state in moving:
        if state.ident in translate.stages:
            updates += zip(translate.stages[state.ident], stage_updates(translate, state),
                           strict=True)
        else:
            updates.append((names[state.ident], translate.expression(state.update.expr)))
    step += [f"double n{k} = {expr};" for k, (_, expr) in enumerate(updates)]
    step += [f"buf[{rows[local]} * W + i] = n{k};" for k, (local, _) in enumerate(updates)]

    def copy_out(idents) -> list[str]:
        lines = [f"for (int64_t i = 0; i < m; i++) out[({k} * nsaved + r) * n + b + i] = "
                 f"buf[{rows[names[ident]]} * W + i];"
                 for k, ident in enumerate(record) if ident in idents]
        return ["if (r >= 0) {", *("  " + line for line in lines), "}"] if lines else []

    before = copy_out(set(record) - set(recorded_dynamic))
    after = copy_out(recorded_dynamic)

    text = "\n".join([
        HEADER,
        f"#define W {LANES}",
        "int sdfit_run(int64_t first, int64_t stop, int64_t n, const double *const *in,",
        "              const int64_t *stride, const double *times, const int64_t *saved,",
        "              int64_t nsteps, int64_t nsaved, double dt, const double *tab,",
        "              double *out) {",
        f"  double *buf = malloc(sizeof(double) * W * {max(len(rows), 1)});",
        "  if (!buf) return 1;",
        "  for (int64_t b = first; b < stop; b += W) {",
        "    const int64_t m = stop - b < W ? stop - b : W;",
        "    double time = times[0];",
        "    for (int64_t i = 0; i < m; i++) {",
        "      const int64_t u = b + i;",
        *("      " + line for line in start),
        "    }",
        "    for (int64_t k = 0; k < nsteps; k++) {",
        "      time = times[k];",
        "      const int64_t r = saved[k];",
        *("      " + line for line in before),
        "      for (int64_t i = 0; i < m; i++) {",
        *("        " + line for line in step),
        "      }",
        *("      " + line for line in after),
        "    }",
        "  }",
        "  free(buf);",
        "  return 0;",
        "}",
        "",
    ])
    tables = np.concatenate(translate.tables) if translate.tables else np.zeros(1)
    return KernelSource(text, overridable, tables, record)


def _stable_schedule(model: BatchModel) -> tuple[list[str], list[str], list[str]]:
    """The model's schedule in an order that does not depend on hash seeds (the same
    program gives the same source, and so hits the cache, in every process)."""
    static, initial, dynamic = model.schedule
    graph = {**model.assignments, **{i: model.initials[i] for i in initial
                                      if i in model.initials}}
    graph |= {s.ident: s.initial for s in model.states}
    return (_stable(static, model.assignments), _stable(initial, graph),
            _stable(dynamic, model.assignments))


def _stable(order: list[str], graph) -> list[str]:
    """The identifiers of ``order`` in a topological order of ``graph`` made from sorted
    inputs."""
    members = set(order)
    sorter = graphlib.TopologicalSorter(
        {i: sorted(d for d in graph[i].deps if d in members) for i in sorted(members)})
    return list(sorter.static_order())
