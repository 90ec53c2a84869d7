"""Write the NumPy expression of one equation from its abstract syntax tree.

Expressions are built the way PySD's Python builder builds them — same
operators, same operator order, same parentheses — so that Python evaluates
them exactly as it evaluates PySD's generated model (``-2^2`` is ``-2.0**2``
in both, as in Vensim).  Stateful structures, lookups and macros are written
by :mod:`.statefuls`, :mod:`.lookups` and :mod:`.macros`; they add states and
hidden auxiliaries to the program and return the expression of their output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pysd.translators.structures import abstract_expressions as ae

from ...exceptions import ModelError, UnsupportedFeatureError
from ..runtime.program import Variable
from ..runtime.variables import key
from . import calls, external, lookups, macros, randoms, statefuls, vectors
from .subscripts import Dims, Expr, align, select, union

#: PySD's arithmetic order of each operator (0: needs no parentheses, as a call).
ORDERS = {"^": 1, "*": 2, "/": 2, "+": 3, "-": 3, "negative": 3,
          "=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
          ":AND:": 0, ":OR:": 0, ":NOT:": 0}
TEMPLATES = {"^": "{}**{}", "*": "{}*{}", "/": "{}/{}", "+": "{} + {}", "-": "{} - {}",
             "=": "{} == {}", "<>": "{} != {}", "<": "{} < {}", "<=": "{} <= {}",
             ">": "{} > {}", ">=": "{} >= {}",
             ":AND:": "np.logical_and({}, {})", ":OR:": "np.logical_or({}, {})"}

#: Built-ins that map onto one vectorised function, by PySD's name: (template, arity).
FUNCTIONS = {
    "abs": ("np.abs({})", 1), "exp": ("np.exp({})", 1), "sqrt": ("np.sqrt({})", 1),
    "ln": ("np.log({})", 1), "log": ("F.log({}, {})", 2), "power": ("np.power({}, {})", 2),
    "sin": ("np.sin({})", 1), "cos": ("np.cos({})", 1), "tan": ("np.tan({})", 1),
    "arcsin": ("np.arcsin({})", 1), "arccos": ("np.arccos({})", 1),
    "arctan": ("np.arctan({})", 1), "sinh": ("np.sinh({})", 1), "cosh": ("np.cosh({})", 1),
    "tanh": ("np.tanh({})", 1), "min": ("np.minimum({}, {})", 2),
    "max": ("np.maximum({}, {})", 2), "pi": ("np.pi", 0),
    "if_then_else": ("F.if_then_else({}, {}, {})", 3), "integer": ("F.integer({})", 1),
    "modulo": ("F.modulo({}, {})", 2), "quantum": ("F.quantum({}, {})", 2),
    "xidz": ("F.xidz({}, {}, {})", 3), "zidz": ("F.zidz({}, {})", 2),
}
#: Built-ins driven by the clock: they also read Time and TIME STEP.
TIME_FUNCTIONS = {
    "step": ("F.step(time, {dt}, {}, {})", 2),
    "ramp": ("F.ramp(time, {}, {}, {})", 3),
    "Xramp": ("F.ramp(time, {}, {})", 2),
    "pulse": ("F.pulse(time, {dt}, {}, width={})", 2),
    "Xpulse": ("F.pulse(time, {dt}, {}, magnitude={})", 2),
    "pulse_train": ("F.pulse_train(time, {dt}, {}, {}, width={}, end={})", 4),
    "Xpulse_train": ("F.pulse_train(time, {dt}, {}, {}, magnitude={})", 3),
}

#: Unsupported built-ins whose PySD name the user would not recognise.
FUNCTION_NAMES = {"vmin_xmile": "MIN of an array", "vmax_xmile": "MAX of an array",
                  "a_function_of": "A FUNCTION OF (an equation left undefined)"}

#: How the user would recognise an abstract-syntax class in an error message.
CONSTRUCTS = {
    "DataStructure": "data variable",
    "GetLookupsStructure": "GET LOOKUPS",
    "GetDataStructure": "GET DATA",
    "GetConstantsStructure": "GET CONSTANTS",
    "AllocateAvailableStructure": "ALLOCATE AVAILABLE",
    "AllocateByPriorityStructure": "ALLOCATE BY PRIORITY",
    "LookupsStructure": "lookup table",
    "SubscriptsReferenceStructure": "subscripts",
}

#: Built-ins whose value arguments keep the shape of the result (PySD reshapes them).
SHAPED = {"if_then_else": (1, 2), "xidz": (0, 1, 2), "zidz": (0, 1)}


@dataclass
class Scope:
    """Names an equation can refer to: the model's, or a macro's own plus the clock."""

    variables: Mapping[str, Variable]
    parent: Scope | None = None
    inherited: frozenset[str] = field(default_factory=frozenset)  # kinds seen in parent

    def resolve(self, name: str) -> Variable | None:
        if name.endswith("$") and self.parent is not None:
            # Vensim's NAME$ inside a macro: the model's own variable (e.g. TIME STEP$)
            return self.parent.resolve(name[:-1])
        var = self.variables.get(key(name))
        if var is None and self.parent is not None:
            var = self.parent.resolve(name)
            if var is not None and var.kind not in self.inherited:
                return None
        return var


class Emitter:
    """Writes the expressions of one model variable and collects what they read.

    Parameters
    ----------
    compiler
        The model compiler (adds states, hidden auxiliaries and tables).
    variable
        The variable being compiled, named in errors.
    scope
        Where references are resolved.
    """

    def __init__(self, compiler, variable: str, scope: Scope, def_subs: Dims | None = None):
        self.compiler, self.variable, self.scope = compiler, variable, scope
        self.def_subs: Dims = def_subs or {}  # the dims of the component being defined
        self.deps: set[str] = set()

    def child(self) -> Emitter:
        """An emitter for a sub-expression with its own dependencies."""
        child = Emitter(self.compiler, self.variable, self.scope, self.def_subs)
        if hasattr(self, "defining"):
            child.defining = self.defining
        return child

    def unsupported(self, construct: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(construct, self.variable, self.compiler.path)

    # -- entry points ---------------------------------------------------------------------
    def emit(self, node) -> Expr:
        """The expression of ``node``; its dependencies are added to ``self.deps``."""
        if isinstance(node, bool | int | float | np.number):
            return Expr(_number(float(node)))
        if isinstance(node, np.ndarray):  # a constant array over the component's dims
            key = self.compiler.new_ident(self.variable, "values")
            values = node.astype(float).reshape((1,) + tuple(map(len, self.def_subs.values())))
            return Expr(f"A['{self.compiler.add_array(key, values)}']", 0, dict(self.def_subs))
        structure = _HANDLERS.get(type(node))
        if structure is not None:  # stateful structures and inline lookups
            return structure(self, node)
        name = type(node).__name__
        method = getattr(self, "_" + name, None)
        if method is None:
            raise self.unsupported(CONSTRUCTS.get(name, name))
        return method(node)

    def operand(self, node, role: str) -> tuple[str, frozenset[str]]:
        """``node`` as an atom (a number or an identifier) and what it reads: anything
        more complex becomes a hidden auxiliary named after ``role``.  Stateful
        structures use this to refer to their inputs from several statements."""
        (atom,), _ = self.operands([(node, role, False)])
        return atom

    def operands(self, specs) -> tuple[list[tuple[str, frozenset[str]]], Dims]:
        """Several operands ``(node, role, full)`` of one structure as atoms, aligned to
        the dims of them all (``full``: spread over every element, e.g. initial values,
        which fix the shape of a state).  Returns the atoms and those dims."""
        subs = [self.child() for _ in specs]
        exprs = [sub.emit(node) for sub, (node, _, _) in zip(subs, specs, strict=True)]
        final = union(exprs)
        atoms = []
        for sub, expr, (_, role, full) in zip(subs, exprs, specs, strict=True):
            expr = align(expr, final, full)
            if expr.order == 0 and (expr.text.isidentifier() or _is_number(expr.text)):
                atoms.append((expr.text, frozenset(sub.deps)))
                continue
            ident = self.compiler.hidden(self.variable, role, expr.text, sub.deps)
            atoms.append((ident, frozenset({ident})))
        return atoms, final

    def aligned(self, nodes, full=()) -> tuple[list[Expr], Dims]:
        """The expressions of ``nodes`` aligned to the dims of them all (those whose
        positions are in ``full`` spread over every element)."""
        exprs = [self.emit(n) for n in nodes]
        final = union(exprs)
        return [align(e, final, i in full) for i, e in enumerate(exprs)], final

    @property
    def time_step(self) -> str:
        """Identifier of TIME STEP (added to the dependencies)."""
        ident = self.scope.resolve("time step").ident
        self.deps.add(ident)
        return ident

    # -- operators ------------------------------------------------------------------------
    def _ArithmeticStructure(self, node) -> Expr:
        args, final = self.aligned(node.arguments)
        partial = all(a.partial for a in args if a.dims)
        ops = [_operator(op) for op in node.operators]
        if any(op not in ORDERS for op in ops):
            raise self.unsupported(f"the operator {next(o for o in ops if o not in ORDERS)}")
        order = ORDERS[ops[-1]]
        args[-1] = args[-1].lowered(2 if ops[-1] == "^" else order)
        if len(args) == 1:  # unary: negative or :NOT:
            if ops[0] == "negative":
                return Expr("-" + args[0].text, 1, final, partial)
            return Expr(f"np.logical_not({args[0].text})", 0, final, partial)
        if all(_is_number(a.text) for a in args):  # NumPy's arithmetic, never Python's
            first = args[0].text  # a sign stays outside, where Python's precedence wants it
            sign, digits = ("-", first[1:]) if first.startswith("-") else ("", first)
            args[0] = Expr(f"{sign}F.real({digits})")
        right = args.pop().text
        while ops:  # right to left, as PySD's builder
            right = TEMPLATES[ops.pop()].format(args.pop().lowered(order).text, right)
        return Expr(right, order, final, partial)

    _LogicStructure = _ArithmeticStructure

    def _GameStructure(self, node) -> Expr:
        return self.emit(node.expression)  # GAME inputs are ignored outside gaming mode

    def _ReferenceStructure(self, node) -> Expr:
        if node.reference in ("time", "time$"):
            self.deps.add("time")
            return Expr("time")
        var = self.scope.resolve(node.reference)
        if var is None and node.reference == "self":  # XMILE: the variable being defined
            var = getattr(self, "defining", None)
        if var is None and node.reference == "pi":  # XMILE's PI without parentheses
            return Expr("np.pi")
        if var is None and self.compiler.subscripts.number(node.reference) is not None:
            values, dims = self.compiler.subscripts.number(node.reference)
            if not dims:
                return Expr(_number(float(values)))
            key = self.compiler.new_ident(node.reference, "positions")
            return Expr(f"A['{self.compiler.add_array(key, values[None])}']", 0,
                        self.mapped(dims))
        if var is None:
            raise ModelError(
                f"The equation of '{self.variable}' in model file '{self.compiler.path}' "
                f"refers to '{node.reference}', which the model does not define."
            )
        if var.kind == "lookup":
            raise self.unsupported(f"the lookup table '{var.name}' used without an argument")
        self.deps.add(var.ident)
        return self.subscripted(var.ident, var, node.subscripts)

    def subscripted(self, text: str, var: Variable, subscripts) -> Expr:
        """``text`` (the value of ``var``) as referenced with ``subscripts``: elements
        taken, ranges renamed, and a range the component's own dims map from renamed to
        them (PySD's ``ReferenceBuilder``)."""
        if not var.dims:
            if subscripts:
                raise ModelError(f"The equation of '{self.variable}' in '{self.compiler.path}'"
                                 f" gives subscripts to '{var.name}', which has none.")
            return Expr(text)
        ranges = self.compiler.subscripts
        var_dims = ranges.coords(var.dims)
        ref = ranges.coords(subscripts.subscripts) if subscripts else var_dims
        if len(ref) != len(var_dims):
            raise ModelError(f"The equation of '{self.variable}' in '{self.compiler.path}' "
                             f"gives {len(ref)} subscript(s) to '{var.name}', which has "
                             f"{len(var_dims)}.")
        text, dims = select(text, var_dims, ref)
        return Expr(text, 0, self.mapped(dims))

    def mapped(self, dims: Dims) -> Dims:
        """``dims`` with each range the component's own dims map it to renamed to them."""
        ranges = self.compiler.subscripts
        final: Dims = {}
        for dim, coords in dims.items():
            if dim not in self.def_subs and not dim.endswith("!"):
                dim = next((m for m in ranges.mapped(dim)
                            if m in self.def_subs and m not in dims), dim)
                coords = ranges.ranges.get(dim, coords)
            final[dim] = coords
        return final

    def _CallStructure(self, node) -> Expr:
        name = node.function.reference
        target = self.scope.resolve(name)
        if target is not None and target.kind == "lookup":
            return lookups.call(self, target, node.function.subscripts, node.arguments)
        if name in self.compiler.macros:
            return macros.expand(self, self.compiler.macros[name], node.arguments)
        if name == "active_initial":
            return statefuls.active_initial(self, *node.arguments)
        if name == "get_time_value":
            return self._get_time_value(node.arguments)
        if name in vectors.BUILDERS:
            return vectors.BUILDERS[name](self, node.arguments)
        if name in randoms.FUNCTIONS:
            return randoms.call(self, name, node.arguments)
        if name in BEYOND_PYSD:
            return BEYOND_PYSD[name](self, node.arguments)
        if name in calls.LOOKUP_MODES:
            return calls.lookup_mode(self, name, node.arguments)
        if name in FUNCTIONS:
            template, arity = FUNCTIONS[name]
        elif name in TIME_FUNCTIONS:
            template, arity = TIME_FUNCTIONS[name]
            self.deps.add("time")
            template = template.replace("{dt}", self.time_step)
        else:
            raise self.unsupported(FUNCTION_NAMES.get(name, f"the function "
                                                      f"{name.upper().replace('_', ' ')}"))
        if len(node.arguments) != arity:
            raise ModelError(f"{name.upper()} takes {arity} argument(s) but the equation of "
                             f"'{self.variable}' in '{self.compiler.path}' gives "
                             f"{len(node.arguments)}.")
        args, final = self.aligned(node.arguments, SHAPED.get(name, ()))
        return Expr(template.format(*(a.text for a in args)), 0, final,
                    all(a.partial for a in args if a.dims))

    def _get_time_value(self, arguments) -> Expr:
        """GET TIME VALUE: PySD implements only the current model time (0, offset, 0)."""
        relative_to, offset, measure = arguments
        if relative_to != 0 or measure != 0:
            raise self.unsupported("GET TIME VALUE other than relative to the current time")
        self.deps.add("time")
        return Expr(f"time + {self.emit(offset).lowered(3).text}", 3)

    _AllocateAvailableStructure = vectors.allocate_available
    _AllocateByPriorityStructure = vectors.allocate_by_priority


#: Calls PySD cannot build, by PySD's name of the function.
BEYOND_PYSD = {"delay_material": statefuls.delay_material, "previous": statefuls.previous,
               "sdfit_lookup": calls.xmile_lookup, "size": calls.size,
               "gamma_ln": calls.gamma_ln}

#: Structures written by the other modules, by abstract-syntax class.
_HANDLERS = {
    ae.IntegStructure: statefuls.integ,
    ae.SmoothStructure: statefuls.smooth,
    ae.SmoothNStructure: statefuls.smooth,
    ae.DelayStructure: statefuls.delay,
    ae.DelayNStructure: statefuls.delay_n,
    ae.DelayFixedStructure: statefuls.delay_fixed,
    ae.TrendStructure: statefuls.trend,
    ae.ForecastStructure: statefuls.forecast,
    ae.SampleIfTrueStructure: statefuls.sample_if_true,
    ae.InitialStructure: statefuls.initial,
    ae.InlineLookupsStructure: lookups.inline,
    ae.GetConstantsStructure: external.constants,
    ae.GetLookupsStructure: external.lookups,
    ae.GetDataStructure: external.data,
    ae.DataStructure: external.data,
}


def _operator(op: str) -> str:
    """XMILE writes ``and``/``or``; Vensim ``:AND:``/``:OR:``."""
    upper = op.upper()
    return f":{upper}:" if upper in ("AND", "OR", "NOT") else op


def _number(value: float) -> str:
    if np.isfinite(value):
        return repr(value)
    return "np.nan" if np.isnan(value) else ("np.inf" if value > 0 else "-np.inf")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text in ("np.nan", "np.inf", "-np.inf")
    return True
