"""Reading model files beyond what PySD's translators accept, without forking them.

* Vensim's inline comments, ``{like this}`` anywhere in an equation (nested too), are
  blanked out before PySD's grammar sees the text (PySD accepts only the ``{UTF-8}``
  header); macro definitions are moved ahead of the model's equations (PySD's grammar
  reads several macros after other text as one macro); lookups written as all their x
  then all their y (``tbl(0, 1, 2, 0, 5, 9)``, Vensim's other notation) become pairs;
  an equation that is a sum of numbers (``x = 41 + 1``, an array to PySD's grammar) is
  put in parentheses.
* A parse error names the variable and gives the line and column in the file (PySD's
  count within the equation, whitespace collapsed).
* ``SINTEG(rate, initial, min, max, quantum, special, threshold)`` becomes a stock with
  restrictions (:class:`SintegStructure`), which the compiler honours.
* XMILE: ``{comments}`` in equations, the ``a[*]`` wildcard (``SUM(a[*])``),
  ``LOOKUP(graphical function, x)``, graphical functions per element sharing one
  equation, spaces in element subscripts (``"Boston, ptype"``) and sums of numbers
  that PySD's grammar takes for arrays (``41+1``) are rewritten in the XML tree before
  PySD's translator reads it.
* The integration method stored in the file: XMILE's ``<sim_specs method="...">``, and
  Vensim's settings block (``15:a,b,c,METHOD,...`` after the sketch: 1 or 5 is RK4, 3 or
  4 RK2; the code as read by xmutil and Simlin), the only place a .mdl file keeps it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from pysd.translators.structures import abstract_expressions as ae

from ..exceptions import ModelError

#: Methods of the files -> sdfit's (RK2 and adaptive methods run with RK4, with a warning).
FILE_METHODS = {"euler": "euler", "rk4": "rk4", "rk2": "rk4", "rk45": "rk4", "rk4auto": "rk4"}


@dataclass
class SintegStructure(ae.IntegStructure):
    """Vensim's SINTEG: an INTEG whose values are restricted (min, max, quantum, special
    value, threshold; NaN for :NA:)."""

    limits: tuple = ()


# -- Vensim text -------------------------------------------------------------------------------
def strip_comments(text: str) -> str:
    """``text`` with every ``{comment}`` inside an equation blanked out (same length, line
    breaks kept, so that positions stay those of the file); the leading encoding marker,
    units and documentation are left alone."""
    out = list(text)
    field, quoted, start, depth = 0, False, None, 0
    leading = re.match(r"\s*\{[^}]*\}", text)
    i = leading.end() if leading else 0
    while i < len(text):
        char = text[i]
        if start is not None:  # inside a comment, which may hold comments of its own
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                for k in range(start, i + 1):
                    out[k] = out[k] if out[k] == "\n" else " "
                start = None
        elif quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "~":
            field += 1
        elif char == "|":
            field = 0
        elif char == "{" and field == 0:
            start, depth = i, 1
        elif text.startswith("\\\\\\---///", i):  # the sketch: no equations beyond
            break
        i += 1
    return "".join(out)


def hoist_macros(text: str) -> str:
    """``text`` with its macro definitions first (after the encoding marker)."""
    pattern = re.compile(r":MACRO:.*?:END OF MACRO:", re.S)
    macros = pattern.findall(text)
    if not macros:
        return text
    leading = re.match(r"\s*\{[^}]*\}", text)
    head = leading.group(0) if leading else ""
    body = pattern.sub("", text[len(head):])
    return head + "\n" + "\n".join(macros) + "\n" + body


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LISTED_LOOKUP = re.compile(
    # an entry's first words (after "|", the encoding marker or a macro), numbers, then "~"
    r"(\A|\||\}|:END OF MACRO:)(\s*[^\s=(|~:{][^\n=(|~:{]*?)\(((?:\s|\\\n)*" + _NUMBER
    + r"(?:(?:\s|\\\n)*,(?:\s|\\\n)*" + _NUMBER + r")+)(?:\s|\\\n)*\)(?=\s*~)")


def pair_lookups(text: str) -> str:
    """Lookups given as ``name(x1, ..., xn, y1, ..., yn)`` rewritten as (x, y) pairs."""
    def paired(match: re.Match) -> str:
        numbers = re.findall(_NUMBER, match.group(3))
        half = len(numbers) // 2
        if len(numbers) % 2 or half < 2:
            return match.group(0)
        points = ",".join(f"({x},{y})" for x, y in zip(numbers[:half], numbers[half:],
                                                      strict=True))
        return f"{match.group(1)}{match.group(2)}({points})"

    return _LISTED_LOOKUP.sub(paired, text)


_SUM_OF_NUMBERS_EQUATION = re.compile(
    r"(\A|\||\}|:END OF MACRO:)(\s*[^\s=(|~:{][^\n=(|~:{]*?=\s*)(" + _NUMBER
    + r"(?:\s*[-+]\s*" + _NUMBER + r")+)(?=\s*~)")


def wrap_sums(text: str) -> str:
    """Equations that are a sum of numbers (``x = 41 + 1``) in parentheses: PySD's grammar
    reads them as an array of two numbers otherwise."""
    return _SUM_OF_NUMBERS_EQUATION.sub(lambda m: f"{m.group(1)}{m.group(2)}({m.group(3)})",
                                        text)


def read_vensim(path: Path):
    """PySD's ``VensimFile`` of ``path`` with inline comments blanked out and macros moved
    first, and the file's text (comments blanked: positions are the file's)."""
    from pysd.translators.vensim.vensim_file import VensimFile

    source = VensimFile(path)
    text = strip_comments(source._read(None))
    source.model_text = wrap_sums(pair_lookups(hoist_macros(text)))
    source._split_sketch()
    return source, text


def vensim_method(text: str) -> str | None:
    """The integration method in a Vensim file's settings block, if it gives one."""
    block = re.search(r":L.?<%\^E!@\s*\n(.*)", text, re.S)
    if block is None:
        return None
    line = re.search(r"^15:([^\n]*)", block.group(1), re.M)
    if line is None:
        return None
    codes = line.group(1).split(",")
    code = int(codes[3]) if len(codes) > 3 and codes[3].strip().isdigit() else 0
    return {1: "rk4", 5: "rk4", 3: "rk2", 4: "rk2"}.get(code, "euler")


def xmile_method(text: str) -> str | None:
    """The integration method of an XMILE file's ``sim_specs``, if it gives one."""
    specs = re.search(r"<sim_specs\b[^>]*?\bmethod\s*=\s*[\"']([^\"']+)[\"']", text)
    return specs.group(1).strip().lower() if specs else None


def integration_method(path: str | Path) -> str:
    """``"euler"`` or ``"rk4"``: the method the model file asks for (Euler when it says
    nothing, as Vensim and Stella default to it)."""
    path = Path(path)
    try:
        text = path.read_text(errors="ignore")
    except OSError:
        return "euler"
    found = vensim_method(text) if path.suffix.lower() == ".mdl" else xmile_method(text)
    if found is None:
        return "euler"
    method = FILE_METHODS.get(found.replace("-", "").replace(" ", ""))
    if method is None or found not in ("euler", "rk4"):
        warnings.warn(f"Model file '{path}' asks for the integration method '{found}', "
                      f"which sdfit does not have; it runs with "
                      f"{'RK4' if method else 'Euler'} instead.", UserWarning, stacklevel=2)
    return method or "euler"


# -- XMILE tree ---------------------------------------------------------------------------------
_SUMS_OF_NUMBERS = re.compile(r"\s*" + _NUMBER + r"(?:\s*[-+]\s*" + _NUMBER + r")+\s*")
_SUBSCRIPTED = re.compile(r'("[^"]+"|[^\W\d][\w.$\']*)(\s*)\[([^\]]*\*[^\]]*)\]')


def prepare_xmile(root, ns: str) -> None:
    """Rewrite, in place, what PySD's XMILE translator cannot read (module docstring)."""
    space = {"ns": ns}
    variables = ".//{" + ns + "}variables/*[@name]"
    dims = {}
    for node in root.iterfind(variables):
        found = [d.get("name") for d in node.iterfind("ns:dimensions/ns:dim", space)]
        dims[_xmile_key(node.get("name"))] = found
    for node in root.iterfind(variables):
        shared = node.find("ns:eqn", space)
        for element in node.iterfind("ns:element", space):
            subscript = element.get("subscript")
            if subscript:  # "Boston, ptype": PySD keeps the space in ' ptype'
                element.set("subscript", ",".join(s.strip() for s in subscript.split(",")))
            if element.find("ns:eqn", space) is None and shared is not None:
                copy = element.makeelement(shared.tag, {})
                copy.text = shared.text
                element.insert(0, copy)
    for eqn in root.iterfind(".//{" + ns + "}eqn"):
        if eqn.text:
            eqn.text = _xmile_equation(eqn.text, dims)


def _xmile_equation(text: str, dims: dict[str, list[str]]) -> str:
    text = strip_comments("|" + text)[1:]  # an equation field from its first character
    text = re.sub(r"(?<![\w.$])LOOKUP\s*\(", "SDFIT_LOOKUP(", text, flags=re.I)

    def wildcard(match: re.Match) -> str:
        ranges = dims.get(_xmile_key(match.group(1)), [])
        subs = [s.strip() for s in match.group(3).split(",")]
        if len(subs) != len(ranges):
            return match.group(0)
        subs = [f"{r}!" if s == "*" else s for s, r in zip(subs, ranges, strict=True)]
        return f"{match.group(1)}{match.group(2)}[{','.join(subs)}]"

    text = _SUBSCRIPTED.sub(wildcard, text)
    if _SUMS_OF_NUMBERS.fullmatch(text):
        text = f"({text.strip()})"
    return text


def _xmile_key(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().strip('"')).lower()


# -- AST extensions ---------------------------------------------------------------------------
def extend(section) -> None:
    """Turn the calls PySD parses but cannot build into sdfit's structures (in place)."""
    for element in section.elements:
        for component in element.components:
            node = component.ast
            if (isinstance(node, ae.CallStructure)
                    and getattr(node.function, "reference", None) == "sinteg"):
                component.ast = _sinteg(node.arguments, element.name)


def _sinteg(arguments, name: str) -> SintegStructure:
    if len(arguments) != 7:
        raise ModelError(f"SINTEG takes 7 arguments; the equation of '{name}' gives "
                         f"{len(arguments)}.")
    limits = arguments[2:]
    if not all(isinstance(v, int | float) for v in limits):
        raise ModelError(f"The last five arguments of SINTEG in the equation of '{name}' "
                         "must be numbers or :NA:.")
    return SintegStructure(arguments[0], arguments[1], False, tuple(map(float, limits)))


# -- parse errors --------------------------------------------------------------------------------
def locate(error, text: str, sections, xml: bool = False) -> str:
    """Where a parsimonious ``error`` lies in the file ``text``: ``line L, column C (in the
    equation of 'name')``, from the equation or expression it was parsing (in an XMILE
    file, ``xml``, the variable is the element around it)."""
    parsed = getattr(error, "text", None)
    pos = max(getattr(error, "pos", 0), 0)
    if not isinstance(parsed, str):
        return ""
    start = _find(parsed, text, 0)
    if xml:
        names = re.findall(r'<\w+\s+name\s*=\s*"([^"]*)"', text[:start or 0])
        name = names[-1] if names and start is not None else ""
    else:
        name = _owner(parsed, sections)
    if start is None:
        return f" (in the equation of '{name}')" if name else ""
    end = _find(parsed[:pos], text, start, anchored=True)
    offset = start if end is None else end
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    where = f" in the equation of '{name}'" if name else ""
    return f" at line {line}, column {column}{where}"


def _owner(parsed: str, sections) -> str:
    """The variable whose equation (or right-hand side) is ``parsed``."""
    for section in sections or ():
        for item in getattr(section, "elements", ()) or ():
            if getattr(item, "expression", None) == parsed:
                return item.name
            if getattr(item, "equation", None) == parsed:
                return re.split(r"[=(\[:]", parsed, maxsplit=1)[0].strip()
    match = re.match(r"\s*([^=(\[:]+?)\s*(?:\[[^\]]*\]\s*)?(?:=|\(|:)", parsed)
    return match.group(1) if match and len(parsed) < 10_000 else ""


def _find(cleaned: str, text: str, start: int, anchored: bool = False) -> int | None:
    """Where ``cleaned`` (PySD's text: whitespace runs and line continuations collapsed
    into one space) occurs in ``text`` from ``start``: its start, or with ``anchored``
    its end when it occurs right at ``start``."""
    tokens = cleaned.split(" ")
    pattern = r"[\s\\]+".join(re.escape(t) for t in tokens)
    try:
        regex = re.compile(pattern)
    except re.error:
        return None
    if anchored:
        found = regex.match(text, start)
        return found.end() if found else None
    found = regex.search(text, start)
    return found.start() if found else None
