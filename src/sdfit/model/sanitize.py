"""Model files are untrusted input: what keeps their text from running as code.

Two places hand model text to Python's compiler outside sdfit's own code generator
(which :mod:`.runtime.validate` checks):

* **PySD's translators** call ``eval`` on pieces they cut out of the model text: numbers,
  quoted strings, lookup points, and the text between a lookup's brackets
  (``tbl([...], (0,0), (1,1))``), which their grammar lets be anything but ``]``, so a
  model could run code by merely being parsed.  :func:`guard_translators` makes that
  ``eval`` :func:`ast.literal_eval`, which reads exactly the literals PySD means to read.
  XMILE files may not declare a DOCTYPE or entities (:func:`check_xml`).
* **PySD's model builder** writes a Python module from the abstract model and imports it
  (the PySD engine).  It writes each variable's documentation raw into a ``\"\"\"``
  docstring, and subscript range names, macro names and parameters, names of functions it
  does not know, external file and tab names, data keywords and lookup types raw between
  single quotes; variable names and units go through ``repr`` and subscript elements into
  ``repr``-written lists, and identifiers through its ``NamespaceManager``, which keeps
  ``[0-9a-zA-Z_]`` only.  :func:`for_pysd` therefore drops documentation (sdfit never
  reads it from PySD) and refuses, in one sentence naming the field and the variable, any
  other text that could end or escape a quoted literal: a quote, a backslash, a line
  break or another unprintable character.  :func:`check_pysd_module` then checks the
  generated module itself before it is imported.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import re
import sys
from pathlib import Path

import numpy as np

from ..exceptions import ModelError


# -- translation ---------------------------------------------------------------------------
def _literal(text, *_):
    """``eval`` for PySD's translators: literals only."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
        raise ValueError(f"{str(text)[:80]!r} is not a number, a string or a list of "
                         "numbers") from error


def _no_exec(*_):
    raise ValueError("PySD's translators may not run code from a model")


@functools.cache
def guard_translators() -> None:
    """Make every module of PySD's translators evaluate literals only (a module-level
    ``eval`` shadows the builtin for the functions of that module)."""
    import pysd.translators.vensim.vensim_file  # noqa: F401  (imports every translator)
    import pysd.translators.xmile.xmile_file  # noqa: F401

    for name, module in list(sys.modules.items()):
        if name.startswith("pysd.translators.") and module is not None:
            module.eval, module.exec = _literal, _no_exec


_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def check_xml(path: Path) -> None:
    """Refuse an XMILE file that declares a DOCTYPE or entities: XMILE needs neither, and
    entities could pull in other files or expand without end."""
    if _DECLARATION.search(path.read_bytes()):
        raise ModelError(f"Model file '{path}' declares a DOCTYPE or XML entities, which "
                         "XMILE models do not use; sdfit refuses them.")


# -- building with PySD ----------------------------------------------------------------------
def for_pysd(model, path: str) -> None:
    """Make a freshly translated ``AbstractModel`` safe for PySD's ``ModelBuilder``:
    documentation is dropped, and text that PySD would write unescaped between quotes is
    refused.

    Raises
    ------
    ModelError
        Naming the field and the variable whose text could escape its quotes.
    """
    macros = {s.name for s in model.sections if s.type == "macro"}
    for section in model.sections:
        context = _Context(path, section, macros)
        if section.type == "macro":
            context.check(section.name, f"the name of the macro '{_shown(section.name)}'")
            for name in [*section.params, *section.returns]:
                context.check(name, f"a parameter of the macro '{_shown(section.name)}'")
        for subscript_range in section.subscripts:
            where = f"the subscript range '{_shown(subscript_range.name)}'"
            context.check(subscript_range.name, f"the name of {where}")
            if not isinstance(subscript_range.subscripts, list):  # a copy, or from a file
                context.walk(subscript_range.subscripts, f"the definition of {where}")
            context.walk(subscript_range.mapping, f"the mapping of {where}")
        for element in section.elements:
            where = f"'{_shown(element.name)}'"
            element.documentation = ""  # written raw into a docstring
            context.walk(element.limits, f"the limits of {where}")
            for component in element.components:
                if type(component.ast).__name__ == "DataStructure":  # TabData('name')
                    context.check(element.name, f"the name of the data variable {where}")
                subscripts, excepts = component.subscripts
                context.walk(context.ranges([*subscripts, *(s for e in excepts for s in e)]),
                             f"the subscripts of {where}")
                for field in dataclasses.fields(component):
                    if field.name != "subscripts":
                        context.walk(getattr(component, field.name),
                                     f"the equation of {where}")


class _Context:
    """The names of one section that PySD writes safely, and the checks of the rest."""

    def __init__(self, path: str, section, macros: set[str]):
        self.path = path
        self.elements = {e for r in section.subscripts if isinstance(r.subscripts, list)
                         for e in r.subscripts}  # written by repr()
        self.variables = {_reference(e.name) for e in section.elements}
        self.macros = macros

    def ranges(self, subscripts) -> list[str]:
        """The subscripts that are not elements: ranges, written raw."""
        return [s for s in subscripts if s not in self.elements]

    def check(self, text: str, what: str, raw_string: bool = False) -> None:
        """Refuse ``text`` if it could end or escape the quotes PySD writes it between
        (``r'...'`` when ``raw_string``: a backslash is harmless unless it ends it)."""
        bad = next((c for c in text if c in "'\\" or not c.isprintable()), None)
        if raw_string and bad == "\\" and not text.endswith("\\"):
            bad = next((c for c in text if c == "'" or not c.isprintable()), None)
        if bad is not None:
            raise ModelError(
                f"Model file '{self.path}': {what} contains {bad!r}, which PySD would "
                "write unescaped into the Python it generates, so the PySD engine refuses "
                "it (the batched engine does not mind).")

    def walk(self, value, where: str, field: str = "") -> None:
        """Check every text inside ``value`` (an abstract syntax tree, or part of one)."""
        if isinstance(value, str):
            what = f"the {field} in {where}" if field else f"a name in {where}"
            self.check(value, what, raw_string=field == "file")
        elif isinstance(value, list | tuple):
            for item in value:
                self.walk(item, where, field)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.walk(key, where, field)
                self.walk(item, where, field)
        elif dataclasses.is_dataclass(value):
            self._node(value, where)
        elif not isinstance(value, int | float | np.number | np.ndarray | type(None)):
            raise ModelError(f"Model file '{self.path}': {where} holds a "
                             f"{type(value).__name__}, which sdfit cannot check.")

    def _node(self, node, where: str) -> None:
        kind = type(node).__name__
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            if kind == "ReferenceStructure" and field.name == "reference":
                continue  # made an identifier by PySD's namespace, or a range (checked)
            if kind == "CallStructure" and field.name == "function":
                name = value.reference
                if name not in self.variables and name not in self.macros:
                    self.check(name, f"the name of the function called in {where}")
                self.walk(value.subscripts, where)
                continue
            if kind == "SubscriptsReferenceStructure":
                value = self.ranges(value)
            self.walk(value, where, field.name.replace("_", " "))


def _shown(name: str) -> str:
    """A name as an error message shows it: on one line, at most 60 characters."""
    name = " ".join(name.split())
    return name if len(name) <= 60 else name[:57] + "..."


def _reference(name: str) -> str:
    """A variable's name as PySD's abstract syntax trees refer to it."""
    return name.lower().replace(" ", "_")


#: What a module generated by PySD's builder may import and read without binding it
#: (scipy: ``from scipy import stats`` for RANDOM NORMAL and RANDOM EXPONENTIAL).
_PYSD_IMPORTS = ("pathlib", "numpy", "xarray", "pysd", "scipy")
_PYSD_NAMES = frozenset({"float", "int", "bool", "len", "__file__"})


def check_pysd_module(py_path: Path, model_path: str) -> None:
    """A second line of defence: refuse a module PySD generated if it imports anything but
    PySD, NumPy, SciPy, xarray and pathlib, reads a builtin or a ``__dunder__`` name PySD never
    writes (``eval``, ``open``, ``__import__``, ``getattr``, ...), or any ``__dunder__``
    attribute."""
    try:
        tree = ast.parse(py_path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError) as error:
        raise ModelError(f"PySD could not load model file '{model_path}': the module it "
                         f"generated is not valid Python ({error}).") from None
    bound = set(_PYSD_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            what = next((f"an import of {m}" for m in modules
                         if m.split(".")[0] not in _PYSD_IMPORTS or _level(node)), None)
        elif isinstance(node, ast.Name) and node.id not in bound and (
                hasattr(builtins, node.id) or node.id.startswith("__")):
            what = f"the name {node.id}"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            what = f"the attribute {node.attr}"
        if what is not None:
            raise ModelError(f"The Python PySD generated from model file '{model_path}' "
                             f"contains {what:.80}, which PySD never writes; refusing to "
                             "load it.")


def _level(node) -> int:
    """Relative imports (``from . import x``) are never PySD's."""
    return getattr(node, "level", 0) or 0
