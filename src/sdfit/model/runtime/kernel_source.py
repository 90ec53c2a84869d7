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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .program import CONTROLS, closure

if TYPE_CHECKING:
    from .program import BatchModel

#: Units per block: enough for the compiler's vector loops, small enough to stay in L1.
LANES = 64


class KernelUnsupported(Exception):
    """The program uses something the kernel does not translate (the NumPy program runs)."""


@dataclass
class KernelSource:
    """The C source of one kernel and what its caller must pass it."""

    text: str
    overridable: tuple[str, ...]  # identifiers an override may replace, by input slot
    tables: np.ndarray  # every lookup table's points, concatenated
    record: tuple[str, ...]


#: The C helpers every kernel includes (the built-ins of :mod:`.functions`, in C).
HEADER = (Path(__file__).parent / "kernel.h").read_text()

#: NumPy functions of one or two values and their C equivalents.
NUMPY = {"abs": "fabs", "exp": "exp", "sqrt": "sqrt", "log": "log", "power": "pow",
         "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
         "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "trunc": "trunc",
         "minimum": "sd_min", "maximum": "sd_max", "mod": "sd_mod"}
ARITY = {"power": 2, "minimum": 2, "maximum": 2, "mod": 2}
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
COMPARISONS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
               ast.GtE: ">="}
LOOKUPS = {"interpolate": "sd_interp", "extrapolate": "sd_extrapolate",
           "hold_backward": "sd_hold_backward"}


def number(value: float) -> str:
    """A C literal of exactly ``value``."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"({float(value)!r})"


@dataclass
class _Translator:
    """Translates the program's Python expressions into C expressions."""

    names: dict[str, str]  # program identifier -> C local
    arrays: dict[str, np.ndarray]
    tables: list[np.ndarray] = field(default_factory=list)
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (offset, n)

    def expression(self, text: str) -> str:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as error:
            raise KernelUnsupported(f"unparsable expression: {error}") from None
        return self.node(tree.body)

    def node(self, node) -> str:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            return number(float(node.value))
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise KernelUnsupported(f"unknown name {node.id!r}")
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.BinOp):
            left, right = self.node(node.left), self.node(node.right)
            if isinstance(node.op, ast.Pow):
                return f"pow({left}, {right})"
            if type(node.op) not in OPERATORS:
                raise KernelUnsupported(f"operator {type(node.op).__name__}")
            return f"({left} {OPERATORS[type(node.op)]} {right})"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return f"(-{self.node(node.operand)})"
            if isinstance(node.op, ast.UAdd):
                return self.node(node.operand)
            raise KernelUnsupported(f"operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and type(node.ops[0]) in COMPARISONS:
            left, right = self.node(node.left), self.node(node.comparators[0])
            return f"((double)({left} {COMPARISONS[type(node.ops[0])]} {right}))"
        if isinstance(node, ast.Call):
            return self.call(node)
        raise KernelUnsupported(f"construct {type(node).__name__}")

    def attribute(self, node: ast.Attribute) -> str:
        if isinstance(node.value, ast.Name) and node.value.id == "np":
            constants = {"nan": "NAN", "inf": "INFINITY", "pi": number(np.pi)}
            if node.attr in constants:
                return constants[node.attr]
        raise KernelUnsupported("attribute access")

    def call(self, node: ast.Call) -> str:
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id in ("np", "F")):
            raise KernelUnsupported("call of something other than a built-in")
        module, name = func.value.id, func.attr
        keywords = {k.arg: k.value for k in node.keywords}
        if None in keywords:
            raise KernelUnsupported("** arguments")
        if module == "np" and name == "interp" and not keywords:
            return self.lookup(node.args, "interpolate")
        if module == "F" and name == "lookup" and not keywords:
            if len(node.args) != 4 or not isinstance(node.args[3], ast.Constant) \
                    or node.args[3].value not in LOOKUPS:
                raise KernelUnsupported("lookup mode")
            return self.lookup(node.args[:3], node.args[3].value)
        args = [self.node(a) for a in node.args]
        kw = {k: self.node(v) for k, v in keywords.items()}
        if module == "np":
            return self.numpy(name, args, kw)
        return self.builtin(name, args, kw)

    def numpy(self, name: str, args: list[str], kw: dict) -> str:
        if name in ("logical_and", "logical_or") and len(args) == 2 and not kw:
            op = "&&" if name == "logical_and" else "||"
            return f"((double)(({args[0]} != 0) {op} ({args[1]} != 0)))"
        if name == "logical_not" and len(args) == 1 and not kw:
            return f"((double)({args[0]} == 0))"
        if name in NUMPY and len(args) == ARITY.get(name, 1) and not kw:
            return f"{NUMPY[name]}({', '.join(args)})"
        raise KernelUnsupported(f"np.{name}")

    def builtin(self, name: str, a: list[str], kw: dict) -> str:
        """The functions of :mod:`.functions` (``F``), with the same arithmetic."""
        n = len(a)
        if name == "if_then_else" and n == 3 and not kw:
            return f"(({a[0]}) != 0 ? {a[1]} : {a[2]})"
        if name == "xidz" and n == 3 and not kw:
            return f"sd_xidz({a[0]}, {a[1]}, {a[2]})"
        if name == "zidz" and n == 2 and not kw:
            return f"sd_xidz({a[0]}, {a[1]}, 0.0)"
        if name == "integer" and n == 1 and not kw:
            return f"trunc({a[0]})"
        if name == "quantum" and n == 2 and not kw:
            return f"sd_quantum({a[0]}, {a[1]})"
        if name == "modulo" and n == 2 and not kw:
            return f"({a[0]} - sd_quantum({a[0]}, {a[1]}))"
        if name == "log" and n == 2 and not kw:
            return f"(log({a[0]}) / log({a[1]}))"
        if name == "step" and n == 4 and not kw:
            time, dt, height, start = a
            return f"({height} * ((double)(({time} + {dt} / 2.0) > {start})))"
        if name == "ramp" and n in (3, 4) and not kw:
            time, slope, start = a[:3]
            final = time if n == 3 else f"sd_min({a[3]}, {time})"
            return (f"((((double)(({time} + SMALL) > {start})) * {slope}) * "
                    f"({final} - {start}))")
        if name == "pulse" and n == 3 and len(kw) == 1 and set(kw) <= {"width", "magnitude"}:
            time, dt, start = a
            width, height = _pulse_shape(dt, kw)
            return f"sd_pulse({time}, {start}, {width}, {height})"
        if name == "pulse_train" and n == 4 and kw and set(kw) <= {"width", "end",
                                                                   "magnitude"}:
            time, dt, start, interval = a
            width, height = _pulse_shape(dt, kw)
            end = kw.get("end", "0.0")
            return (f"sd_pulse_train({time}, {start}, {interval}, {width}, {end}, "
                    f"{int('end' in kw)}, {height})")
        raise KernelUnsupported(f"F.{name}")

    def lookup(self, args, mode: str) -> str:
        if len(args) != 3:
            raise KernelUnsupported("lookup arguments")
        x = self.node(args[0])
        xs, ys = (self.table(a) for a in args[1:])
        if xs[1] != ys[1]:
            raise KernelUnsupported("lookup tables of different lengths")
        return f"{LOOKUPS[mode]}({x}, tab + {xs[0]}, tab + {ys[0]}, {xs[1]})"

    def table(self, node) -> tuple[int, int]:
        """``A['key']`` of a one-dimensional table: its offset and length in ``tab``."""
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "A" and isinstance(node.slice, ast.Constant)
                and node.slice.value in self.arrays):
            raise KernelUnsupported("table reference")
        key = node.slice.value
        if key not in self.offsets:
            values = np.asarray(self.arrays[key], dtype=float)
            if values.ndim != 1 or values.size == 0:
                raise KernelUnsupported("subscripted table")
            self.offsets[key] = (sum(len(t) for t in self.tables), len(values))
            self.tables.append(values)
        return self.offsets[key]


def _pulse_shape(dt: str, kw: dict) -> tuple[str, str]:
    """Width and height of a pulse as :func:`.functions.pulse` computes them."""
    width = kw.get("width", f"(0.5 * {dt})")
    height = f"({kw['magnitude']} / {dt})" if "magnitude" in kw else "1.0"
    return width, height


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
    translate = _Translator(names, model.arrays)
    overridable = tuple(static) + tuple(s for s in states if s not in static)
    slot = {ident: k for k, ident in enumerate(overridable)}

    moving = [s for s in model.states if s.update.expr != s.ident]
    needed = closure({*record, *CONTROLS}.union(*(s.update.deps for s in moving)),
                     model.assignments)
    step_dynamic = [i for i in dynamic if i in needed]
    used = set(record).union(*(model.assignments[i].deps for i in step_dynamic),
                             *(s.update.deps for s in moving))
    kept_static = [i for i in static if i in used]
    recorded_dynamic = [i for i in dict.fromkeys(record) if i in step_dynamic]
    buffers = {ident: k for k, ident in enumerate([*kept_static, *states, *recorded_dynamic])}

    def store(ident: str) -> str:
        return f"buf[{buffers[ident]} * W + i] = {names[ident]};"

    def overridden(ident: str, expr: str) -> str:
        k = slot[ident]
        return (f"double {names[ident]} = in[{k}] ? in[{k}][u * stride[{k}]] : "
                f"{translate.expression(expr)};")

    start = [overridden(i, model.assignments[i].expr) for i in static]
    for ident in initial:
        if ident in states:
            start.append(overridden(ident, states[ident].initial.expr))
        else:  # ACTIVE INITIAL takes its initial value while the model initialises
            expr = model.initials.get(ident, model.assignments[ident]).expr
            start.append(f"double {names[ident]} = {translate.expression(expr)};")
    start += [store(i) for i in buffers if i not in recorded_dynamic]

    # one straight-line loop per step, which the C compiler vectorises across units: the
    # values due are copied out around it (states and statics before their update,
    # auxiliaries after), and the states move on even after the last step (unread)
    step = [f"double {names[i]} = buf[{k} * W + i];" for i, k in buffers.items()
            if i not in recorded_dynamic]
    step += [f"double {names[i]} = {translate.expression(model.assignments[i].expr)};"
             for i in step_dynamic]
    step += [store(i) for i in recorded_dynamic]
    updates = [(s.ident, translate.expression(s.update.expr)) for s in moving]
    step += [f"double n{k} = {expr};" for k, (_, expr) in enumerate(updates)]
    step += [f"buf[{buffers[ident]} * W + i] = n{k};" for k, (ident, _) in enumerate(updates)]

    def copy_out(idents) -> list[str]:
        lines = [f"for (int64_t i = 0; i < m; i++) out[({k} * nsaved + r) * n + b + i] = "
                 f"buf[{buffers[ident]} * W + i];"
                 for k, ident in enumerate(record) if ident in idents]
        return ["if (r >= 0) {", *("  " + line for line in lines), "}"] if lines else []

    before = copy_out(set(buffers) - set(recorded_dynamic))
    after = copy_out(recorded_dynamic)

    text = "\n".join([
        HEADER,
        f"#define W {LANES}",
        "int sdfit_run(int64_t first, int64_t stop, int64_t n, const double *const *in,",
        "              const int64_t *stride, const double *times, const int64_t *saved,",
        "              int64_t nsteps, int64_t nsaved, double dt, const double *tab,",
        "              double *out) {",
        f"  double *buf = malloc(sizeof(double) * W * {max(len(buffers), 1)});",
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
