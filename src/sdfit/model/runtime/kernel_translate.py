"""Translate the expressions of a :class:`~.program.BatchModel` into C (for :mod:`.kernel_source`).

Each expression is re-read with :mod:`ast` and translated node by node: only numbers, the
program's own identifiers (mapped to numbered C locals) and the operators and built-ins
listed here are accepted, each written with the same arithmetic as the NumPy or
:mod:`.functions` code it replaces; anything else raises :class:`KernelUnsupported`.
DELAY and SMOOTH pipelines (a state with a leading stage axis in the NumPy program) become
one C local per stage.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

import numpy as np


class KernelUnsupported(Exception):
    """The program uses something the kernel does not translate (the NumPy program runs)."""


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
class Translator:
    """Translates the program's Python expressions into C expressions."""

    names: dict[str, str]  # program identifier -> C local
    arrays: dict[str, np.ndarray]
    stages: dict[str, list[str]] = field(default_factory=dict)  # pipeline -> C locals
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
            if node.id in self.stages:
                raise KernelUnsupported("a DELAY or SMOOTH pipeline read whole")
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
        if module == "F" and name == "last_stage" and len(node.args) == 2 and not keywords:
            return self.last_stage(*node.args)
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
        if name == "real" and n == 1 and not kw:  # C's doubles are NumPy's floats already
            return a[0]
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
        if name == "delay_order" and n == 3 and not kw:
            return f"sd_delay_order({a[0]}, {a[1]}, {a[2]})"
        if name == "smooth_order" and n == 1 and not kw:
            return f"trunc({a[0]})"
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

    def last_stage(self, pipeline, order) -> str:
        """:func:`.functions.last_stage`: the stage ``order`` of each unit, NaN for 0."""
        if not (isinstance(pipeline, ast.Name) and pipeline.id in self.stages):
            raise KernelUnsupported("last_stage of something other than a pipeline")
        stages = self.stages[pipeline.id]
        if isinstance(order, ast.Constant) and type(order.value) is int:
            return stages[order.value - 1] if 0 < order.value <= len(stages) else "NAN"
        o = self.node(order)
        chosen = "NAN"  # orders are whole numbers from 0 to the number of stages
        for k in range(len(stages), 0, -1):
            chosen = stages[k - 1] if k == len(stages) else \
                f"({o} <= {number(k)} ? {stages[k - 1]} : {chosen})"
        return f"({o} > 0 ? {chosen} : NAN)" if stages else "NAN"

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




def stage_count(state, states: dict) -> int | None:
    """The number of stages of a DELAY1/3 or SMOOTH3 pipeline: the most its order can be
    (a DELAY lowers its order per unit, never raises it); None for a state that is no
    pipeline.  Pipelines whose order is an expression (DELAY N, SMOOTH N) are refused."""
    init = _call(state.initial.expr)
    if init is None or init[0] != "F.stages":
        return None
    order = init[1].args[1]
    if isinstance(order, ast.Constant) and type(order.value) is int:
        count = order.value
    else:
        source = _call(states[order.id].initial.expr) if isinstance(order, ast.Name) \
            and order.id in states else None
        if source is None or source[0] not in ("F.delay_order", "F.smooth_order") \
                or not _is_number(source[1].args[0]):
            raise KernelUnsupported("DELAY N or SMOOTH N of an order that is not a number")
        count = math.trunc(source[1].args[0].value)
    update = _call(state.update.expr)
    if update is None or update[0] not in ("F.delay_step", "F.smooth_step") \
            or len(update[1].args) != 5 or not isinstance(update[1].args[0], ast.Name) \
            or update[1].args[0].id != state.ident or update[1].keywords:
        raise KernelUnsupported("a pipeline moved by something else than its step")
    return max(count, 0)


def stage_updates(translate: Translator, state) -> list[str]:
    """The new value of each stage of a pipeline, as :func:`.functions.delay_step` and
    :func:`.functions.smooth_step` compute it (stages beyond a unit's order move but are
    never read)."""
    kind, call = _call(state.update.expr)
    x, time, order = (translate.node(a) for a in call.args[1:4])
    stages = translate.stages[state.ident]
    lines = []
    for k, s in enumerate(stages):
        if kind == "F.delay_step":  # stages hold content times the delay time
            inflow = x if k == 0 else f"({stages[k - 1]} / {time})"
            lines.append(f"({s} + ((({inflow} - ({s} / {time})) * {order}) * dt))")
        else:
            inflow = x if k == 0 else stages[k - 1]
            lines.append(f"({s} + (((({inflow} - {s}) * {order}) / {time}) * dt))")
    return lines


def _call(text: str) -> tuple[str, ast.Call] | None:
    """``("F.name", call)`` when ``text`` is a call of a function of ``F``."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "F":
        return f"F.{node.func.attr}", node
    return None


def _is_number(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) \
        and math.isfinite(node.value)
