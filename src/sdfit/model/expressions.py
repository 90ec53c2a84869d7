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

from ..exceptions import ModelError, UnsupportedFeatureError
from ..names import canonical
from . import lookups, macros, statefuls
from .program import Variable

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
    "ndarray": "subscripts",
}


@dataclass(frozen=True)
class Expr:
    """Python text of an expression and its arithmetic order (PySD's ``BuildAST.order``)."""

    text: str
    order: int = 0

    def lowered(self, order: int) -> Expr:
        """Parenthesised if an operator of ``order`` would otherwise bind it wrongly."""
        if self.order >= order and self.order != 0 and order != 0:
            return Expr(f"({self.text})")
        return self


@dataclass
class Scope:
    """Names an equation can refer to: the model's, or a macro's own plus the clock."""

    variables: Mapping[str, Variable]
    parent: Scope | None = None
    inherited: frozenset[str] = field(default_factory=frozenset)  # kinds seen in parent

    def resolve(self, name: str) -> Variable | None:
        var = self.variables.get(canonical(name))
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

    def __init__(self, compiler, variable: str, scope: Scope):
        self.compiler, self.variable, self.scope = compiler, variable, scope
        self.deps: set[str] = set()

    def child(self) -> Emitter:
        """An emitter for a sub-expression with its own dependencies."""
        return Emitter(self.compiler, self.variable, self.scope)

    def unsupported(self, construct: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(construct, self.variable, self.compiler.path)

    # -- entry points ---------------------------------------------------------------------
    def emit(self, node) -> Expr:
        """The expression of ``node``; its dependencies are added to ``self.deps``."""
        if isinstance(node, bool | int | float | np.number):
            return Expr(_number(float(node)))
        structure = _HANDLERS.get(type(node))
        if structure is not None:  # stateful structures and inline lookups: an identifier
            return Expr(structure(self, node))
        name = type(node).__name__
        method = getattr(self, "_" + name, None)
        if method is None:
            raise self.unsupported(CONSTRUCTS.get(name, name))
        return method(node)

    def operand(self, node, role: str) -> tuple[str, frozenset[str]]:
        """``node`` as an atom (a number or an identifier) and what it reads: anything
        more complex becomes a hidden auxiliary named after ``role``.  Stateful
        structures use this to refer to their inputs from several statements."""
        sub = self.child()
        expr = sub.emit(node)
        if expr.order == 0 and (expr.text.isidentifier() or _is_number(expr.text)):
            return expr.text, frozenset(sub.deps)
        ident = self.compiler.hidden(self.variable, role, expr.text, sub.deps)
        return ident, frozenset({ident})

    @property
    def time_step(self) -> str:
        """Identifier of TIME STEP (added to the dependencies)."""
        ident = self.scope.resolve("time step").ident
        self.deps.add(ident)
        return ident

    # -- operators ------------------------------------------------------------------------
    def _ArithmeticStructure(self, node) -> Expr:
        args = [self.emit(a) for a in node.arguments]
        ops = [_operator(op) for op in node.operators]
        if any(op not in ORDERS for op in ops):
            raise self.unsupported(f"the operator {next(o for o in ops if o not in ORDERS)}")
        order = ORDERS[ops[-1]]
        args[-1] = args[-1].lowered(2 if ops[-1] == "^" else order)
        if len(args) == 1:  # unary: negative or :NOT:
            if ops[0] == "negative":
                return Expr("-" + args[0].text, 1)
            return Expr(f"np.logical_not({args[0].text})")
        right = args.pop().text
        while ops:  # right to left, as PySD's builder
            right = TEMPLATES[ops.pop()].format(args.pop().lowered(order).text, right)
        return Expr(right, order)

    _LogicStructure = _ArithmeticStructure

    def _GameStructure(self, node) -> Expr:
        return self.emit(node.expression)  # GAME inputs are ignored outside gaming mode

    def _ReferenceStructure(self, node) -> Expr:
        if node.subscripts:
            raise self.unsupported("subscripts")
        if node.reference == "time":
            self.deps.add("time")
            return Expr("time")
        var = self.scope.resolve(node.reference)
        if var is None and canonical(node.reference) in self.compiler.ranges:
            raise self.unsupported("subscripts")  # a subscript range used as a value
        if var is None:
            raise ModelError(
                f"The equation of '{self.variable}' in model file '{self.compiler.path}' "
                f"refers to '{node.reference}', which the model does not define."
            )
        if var.kind == "lookup":
            raise self.unsupported(f"the lookup table '{var.name}' used without an argument")
        self.deps.add(var.ident)
        return Expr(var.ident)

    def _CallStructure(self, node) -> Expr:
        name = node.function.reference
        target = self.scope.resolve(name)
        if target is not None and target.kind == "lookup":
            return Expr(lookups.call(self, target, node.arguments))
        if name in self.compiler.macros:
            return Expr(macros.expand(self, self.compiler.macros[name], node.arguments))
        if name == "active_initial":
            return Expr(statefuls.active_initial(self, *node.arguments))
        if name == "get_time_value":
            return self._get_time_value(node.arguments)
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
        return Expr(template.format(*(self.emit(a).text for a in node.arguments)))

    def _get_time_value(self, arguments) -> Expr:
        """GET TIME VALUE: PySD implements only the current model time (0, offset, 0)."""
        relative_to, offset, measure = arguments
        if relative_to != 0 or measure != 0:
            raise self.unsupported("GET TIME VALUE other than relative to the current time")
        self.deps.add("time")
        return Expr(f"time + {self.emit(offset).lowered(3).text}", 3)


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
