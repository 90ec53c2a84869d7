"""Compile PySD's AbstractModel into a :class:`~sdfit.model.program.BatchModel`.

The compiler walks each element's abstract syntax tree once and writes a
NumPy expression for it in which every value carries a leading batch axis.
Whatever it cannot compile raises :class:`UnsupportedFeatureError` naming the
construct, the variable and the file: nothing silently computes something else.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

import numpy as np
from pysd.translators.structures import abstract_expressions as ae
from pysd.translators.structures import abstract_model as am

from ..exceptions import ModelError, UnsupportedFeatureError
from ..names import canonical
from .program import CONTROLS, Assignment, BatchModel, State, Variable
from .translate import translate

#: Vensim built-ins that map one-to-one onto a vectorised function, by PySD's name.
FUNCTIONS = {
    "abs": "np.abs",
    "exp": "np.exp",
    "ln": "np.log",
    "sqrt": "np.sqrt",
    "sin": "np.sin",
    "cos": "np.cos",
    "tan": "np.tan",
    "arcsin": "np.arcsin",
    "arccos": "np.arccos",
    "arctan": "np.arctan",
    "min": "np.minimum",
    "max": "np.maximum",
    "if_then_else": "F.if_then_else",
}

#: Python spelling of Vensim's binary and unary operators.
OPERATORS = {
    "+": "+", "-": "-", "*": "*", "/": "/", "^": "**",
    "=": "==", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
}
LOGICAL = {":AND:": "np.logical_and", ":OR:": "np.logical_or"}

#: How the user would recognise an abstract-syntax class in an error message.
CONSTRUCTS = {
    "SmoothStructure": "SMOOTH",
    "SmoothNStructure": "SMOOTH N",
    "DelayStructure": "DELAY",
    "DelayNStructure": "DELAY N",
    "DelayFixedStructure": "DELAY FIXED",
    "TrendStructure": "TREND",
    "ForecastStructure": "FORECAST",
    "SampleIfTrueStructure": "SAMPLE IF TRUE",
    "InitialStructure": "INITIAL",
    "LookupsStructure": "lookup table",
    "InlineLookupsStructure": "WITH LOOKUP",
    "DataStructure": "data variable",
    "GetLookupsStructure": "GET LOOKUPS",
    "GetDataStructure": "GET DATA",
    "GetConstantsStructure": "GET CONSTANTS",
    "GameStructure": "GAME",
    "AllocateAvailableStructure": "ALLOCATE AVAILABLE",
    "AllocateByPriorityStructure": "ALLOCATE BY PRIORITY",
    "IntegStructure": "INTEG inside an expression",
}


def load_model(path: str | Path) -> BatchModel:
    """Read a Vensim ``.mdl`` or XMILE model and compile it for batched simulation.

    Raises
    ------
    ModelError
        The file is missing or cannot be parsed.
    UnsupportedFeatureError
        The model uses a construct the batched engine does not compile.
    """
    return compile_model(translate(path), path)


def compile_model(abstract_model: am.AbstractModel, path: str | Path = "") -> BatchModel:
    """Compile a parsed ``AbstractModel`` into a :class:`BatchModel`."""
    return _Compiler(abstract_model, str(path or abstract_model.original_path)).compile()


class _Compiler:
    def __init__(self, abstract_model: am.AbstractModel, path: str):
        self.path = path
        sections = [s for s in abstract_model.sections if s.type == "main"]
        self.section = sections[0]
        if len(abstract_model.sections) > 1:
            macro = next(s for s in abstract_model.sections if s.type != "main")
            raise UnsupportedFeatureError(f"the macro {macro.name.upper()}", macro.name, path)
        self.variables: dict[str, Variable] = {}
        self.assignments: dict[str, Assignment] = {}
        self.states: list[State] = []
        self.arrays: dict[str, np.ndarray] = {}
        self._idents: set[str] = {"time", "dt", "np", "F", "A"}

    # -- driver -------------------------------------------------------------------------
    def compile(self) -> BatchModel:
        elements = sorted(
            self.section.elements, key=lambda e: not isinstance(e, am.AbstractControlElement)
        )
        for element in elements:
            self._declare(element)
        missing = [c for c in CONTROLS if c not in {v.ident for v in self.variables.values()}]
        if missing:
            names = ", ".join(c[2:].replace("_", " ").upper() for c in missing)
            raise ModelError(f"Model file '{self.path}' does not define {names}.")
        for element in elements:
            self._element(element)
        model = BatchModel(self.path, self.variables, self.assignments, tuple(self.states),
                           self.arrays)
        static = model.static_idents  # checks the program for circular equations
        model.variables = {
            key: Variable(v.name, v.ident, "constant", v.dims)
            if v.kind == "auxiliary" and v.ident in static else v
            for key, v in self.variables.items()
        }
        return model

    def _declare(self, element: am.AbstractElement) -> None:
        key = canonical(element.name)
        if key in self.variables:
            raise ModelError(f"Model file '{self.path}' defines '{element.name}' twice.")
        component = element.components[0]
        if isinstance(element, am.AbstractControlElement):
            kind = "control"
        elif isinstance(component, am.AbstractLookup):
            kind = "lookup"
        elif isinstance(component.ast, ae.IntegStructure):
            kind = "stock"
        else:
            kind = "auxiliary"
        self.variables[key] = Variable(element.name, self._ident(key), kind)

    def _ident(self, key: str) -> str:
        base = "v_" + re.sub(r"\W", "_", key, flags=re.ASCII)
        ident, n = base, 1
        while ident in self._idents or keyword.iskeyword(ident):
            n += 1
            ident = f"{base}_{n}"
        self._idents.add(ident)
        return ident

    # -- elements -------------------------------------------------------------------------
    def _element(self, element: am.AbstractElement) -> None:
        var = self.variables[canonical(element.name)]
        if len(element.components) > 1 or any(c.subscripts[0] for c in element.components):
            raise UnsupportedFeatureError("subscripts", element.name, self.path)
        component = element.components[0]
        ast = component.ast
        if var.kind == "lookup":
            raise UnsupportedFeatureError("lookup table", element.name, self.path)
        if var.kind == "stock":
            flow, initial = _Emitter(self, element.name), _Emitter(self, element.name)
            update = f"{var.ident} + ({flow.emit(ast.flow)}) * dt"
            if ast.non_negative:
                raise UnsupportedFeatureError("non-negative INTEG", element.name, self.path)
            self.states.append(State(
                var.ident,
                Assignment(var.ident, initial.emit(ast.initial), frozenset(initial.deps)),
                Assignment(var.ident, update, frozenset(flow.deps | {var.ident})),
            ))
            return
        emitter = _Emitter(self, element.name)
        expr = emitter.emit(ast)
        self.assignments[var.ident] = Assignment(var.ident, expr, frozenset(emitter.deps))


class _Emitter:
    """Writes the NumPy expression of one equation and collects what it reads."""

    def __init__(self, compiler: _Compiler, variable: str):
        self.compiler, self.variable = compiler, variable
        self.deps: set[str] = set()

    def unsupported(self, construct: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(construct, self.variable, self.compiler.path)

    def emit(self, node) -> str:
        if isinstance(node, bool | int | float | np.number):
            return _number(float(node))
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            name = type(node).__name__
            raise self.unsupported(CONSTRUCTS.get(name, name))
        return method(node)

    def _ArithmeticStructure(self, node: ae.ArithmeticStructure) -> str:
        args = [f"({self.emit(a)})" for a in node.arguments]
        if node.operators == ["negative"]:
            return f"-{args[0]}"
        if "negative" in node.operators:
            raise self.unsupported("unary minus inside an operator chain")
        parts = [args[0]]
        for op, arg in zip(node.operators, args[1:], strict=True):
            parts += [OPERATORS[op], arg]
        return " ".join(parts)

    def _LogicStructure(self, node: ae.LogicStructure) -> str:
        args = [f"({self.emit(a)})" for a in node.arguments]
        if node.operators == [":NOT:"]:
            return f"np.logical_not{args[0]}"
        result = args[0]
        for op, arg in zip(node.operators, args[1:], strict=True):
            if op in LOGICAL:
                result = f"{LOGICAL[op]}({result}, {arg})"
            elif op in OPERATORS:
                result = f"({result} {OPERATORS[op]} {arg})"
            else:
                raise self.unsupported(f"the operator {op}")
        return result

    def _ReferenceStructure(self, node: ae.ReferenceStructure) -> str:
        if node.subscripts:
            raise self.unsupported("subscripts")
        if node.reference == "time":
            self.deps.add("time")
            return "time"
        var = self.compiler.variables.get(canonical(node.reference))
        if var is None:
            raise ModelError(
                f"The equation of '{self.variable}' in model file '{self.compiler.path}' "
                f"refers to '{node.reference}', which the model does not define."
            )
        if var.kind == "lookup":
            raise self.unsupported(f"the lookup table '{var.name}' used without an argument")
        self.deps.add(var.ident)
        return var.ident

    def _CallStructure(self, node: ae.CallStructure) -> str:
        name = node.function.reference
        args = ", ".join(self.emit(a) for a in node.arguments)
        if name in FUNCTIONS:
            return f"{FUNCTIONS[name]}({args})"
        raise self.unsupported(f"the function {name.upper()}")


def _number(value: float) -> str:
    if np.isfinite(value):
        return repr(value)
    return "np.nan" if np.isnan(value) else ("np.inf" if value > 0 else "-np.inf")
