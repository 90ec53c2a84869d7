"""What generated code may contain, checked before it runs.

The compiler writes every program from its own templates: text from a model enters
only as identifiers made by ``new_ident`` (ASCII letters, digits, ``_``), numbers
written with ``repr`` and interpolation modes from fixed lists.  This module does not
trust that promise but checks its result.  :func:`check_program` parses a generated
program with :mod:`ast` and refuses anything outside a whitelist:

* statements and expressions of the few kinds the code generator writes (no imports,
  lambdas, comprehensions, f-strings, ``global``, ``with``, ``try``, classes);
* names: only those the program binds itself, or the modules and tables it is given
  (``np``, ``F``, ``V``, ``A``, ...), never beginning with ``_``;
* attributes: NumPy's ufuncs, constants and a few pure array functions; the functions
  and classes defined in :mod:`.functions` (``F``) and :mod:`.arrays` (``V``); and a
  handful of methods (``transpose``, ``append``, ...); never one beginning with ``_``;
* constants: numbers, ``True``/``False``/``None``, and strings that are identifiers
  (table keys, interpolation modes).

:func:`evaluate` computes a constant expression the compiler wrote (a table of
constants, a lookup table as referenced) by walking its checked syntax tree, with no
``eval`` at all.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping

import numpy as np

from ...exceptions import ModelError
from . import arrays, functions

#: The only builtin the generated program uses (``slice`` in assembled variables).
BUILTINS = {"slice": slice}

#: Modules the program reads attributes of.
MODULES = {"np": np, "F": functions, "V": arrays}

#: NumPy functions the compiler may write besides ufuncs and float constants: pure array
#: functions that read no file and run no code.
NUMPY_FUNCTIONS = frozenset({
    "interp", "sum", "prod", "min", "max", "mean", "cumsum", "cumprod", "where", "clip",
    "round", "full", "zeros", "ones", "stack", "concatenate", "broadcast_to", "isnan",
    "isfinite", "any", "all",
})

#: Methods the program calls on its own values (arrays, states, lists of rows).
METHODS = frozenset({"transpose", "push", "output", "append"})

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Is: operator.is_, ast.IsNot: operator.is_not,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}

#: Node types of expressions, and of the statements of the two generated functions.
EXPRESSION_NODES = frozenset({
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript,
    ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.Call, ast.keyword, ast.BinOp,
    ast.UnaryOp, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.IfExp,
    *_BINARY, *_UNARY, *_COMPARE,
})
PROGRAM_NODES = EXPRESSION_NODES | {
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.Store,
    ast.Expr, ast.While, ast.If, ast.Break,
}


def check_program(source: str, path: str, namespace: Mapping[str, object]) -> None:
    """Refuse a generated program that leaves the whitelist.

    Parameters
    ----------
    source
        The program's Python source.
    path
        The model file it was generated from (named in the error).
    namespace
        What the program is run with: the names it may read besides its own.

    Raises
    ------
    ModelError
        Naming the model file and the first construct outside the whitelist.
    """
    tree = _parse(source, "exec", path)
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    protected = bound & (set(namespace) | set(BUILTINS))
    if protected:
        _refuse(path, f"an assignment to '{sorted(protected)[0]}'")
    _check(tree, PROGRAM_NODES, bound | set(namespace) | set(BUILTINS), path)


def evaluate(text: str, namespace: Mapping[str, object], path: str):
    """The value of a constant expression written by the compiler (``namespace`` gives the
    names it reads), computed by walking its checked syntax tree."""
    tree = _parse(text, "eval", path)
    _check(tree, EXPRESSION_NODES, set(namespace), path)
    return _Interpreter(namespace).value(tree.body)


# -- the whitelist ---------------------------------------------------------------------------
def _parse(source: str, mode: str, path: str) -> ast.AST:
    try:
        return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError) as error:  # ValueError: a NUL character
        raise ModelError(f"The program generated for model file '{path}' is not valid "
                         f"Python ({error}); refusing to run it.") from None


def _refuse(path: str, what: str):
    raise ModelError(f"The program generated for model file '{path}' contains {what}, "
                     "which sdfit never writes; refusing to run it.")


def _check(tree: ast.AST, nodes: frozenset, names: set[str], path: str) -> None:
    for node in ast.walk(tree):
        if type(node) not in nodes:
            _refuse(path, f"a {type(node).__name__} construct")
        if isinstance(node, ast.Name):
            if not _IDENTIFIER.fullmatch(node.id) or node.id not in names:
                _refuse(path, f"the name {node.id[:60]!r}")
        elif isinstance(node, ast.Attribute):
            if not _attribute_allowed(node):
                _refuse(path, f"the attribute {node.attr[:60]!r}")
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                if not _IDENTIFIER.fullmatch(value):
                    _refuse(path, f"the string {value[:60]!r}")
            elif not (value is None or isinstance(value, bool | int | float)):
                _refuse(path, f"the constant {value!r:.60}")
        elif isinstance(node, ast.Dict) and None in node.keys:
            _refuse(path, "a dictionary unpacking")
        elif isinstance(node, ast.FunctionDef | ast.arg | ast.keyword):
            name = node.name if isinstance(node, ast.FunctionDef) else node.arg
            if name is None or not _IDENTIFIER.fullmatch(name):
                _refuse(path, f"the name {str(name)[:60]!r}")


def _attribute_allowed(node: ast.Attribute) -> bool:
    name = node.attr
    if name.startswith("_"):
        return False
    base = node.value
    if isinstance(base, ast.Name) and base.id in MODULES:
        module = MODULES[base.id]
        value = getattr(module, name, None)
        if module is np:
            return isinstance(value, np.ufunc | float) or name in NUMPY_FUNCTIONS
        # defined in F or V itself: never a module or a name they import
        return callable(value) and getattr(value, "__module__", None) == module.__name__
    return name in METHODS


# -- the interpreter of constant expressions -------------------------------------------------
class _Interpreter:
    """Computes a checked expression tree: the node types of ``EXPRESSION_NODES``."""

    def __init__(self, namespace: Mapping[str, object]):
        self.namespace = namespace

    def value(self, node: ast.AST):
        return getattr(self, "_" + type(node).__name__)(node)

    def _Constant(self, node):
        return node.value

    def _Name(self, node):
        return self.namespace[node.id]

    def _Attribute(self, node):
        return getattr(self.value(node.value), node.attr)

    def _Subscript(self, node):
        return self.value(node.value)[self.value(node.slice)]

    def _Slice(self, node):
        return slice(*(None if part is None else self.value(part)
                       for part in (node.lower, node.upper, node.step)))

    def _Tuple(self, node):
        return tuple(self.value(e) for e in node.elts)

    def _List(self, node):
        return [self.value(e) for e in node.elts]

    def _Dict(self, node):
        return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values,
                                                             strict=True)}

    def _Call(self, node):
        function = self.value(node.func)
        return function(*(self.value(a) for a in node.args),
                        **{k.arg: self.value(k.value) for k in node.keywords})

    def _BinOp(self, node):
        return _BINARY[type(node.op)](self.value(node.left), self.value(node.right))

    def _UnaryOp(self, node):
        return _UNARY[type(node.op)](self.value(node.operand))

    def _Compare(self, node):
        left = self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.value(right_node)
            result = _COMPARE[type(op)](left, right)
            if len(node.ops) > 1 and not result:  # a < b < c: (a < b) and (b < c)
                return result
            left = right
        return result

    def _BoolOp(self, node):
        result = self.value(node.values[0])
        for operand in node.values[1:]:
            if isinstance(node.op, ast.And) != bool(result):
                return result
            result = self.value(operand)
        return result

    def _IfExp(self, node):
        return self.value(node.body if self.value(node.test) else node.orelse)
