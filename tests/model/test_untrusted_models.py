"""Model files are untrusted input: no text in a model runs as code, in either engine.

The payloads below try to create a marker when they run (the plain word and the trailing
backslash only check that odd text ends well).  Each is put into every textual field of
a Vensim and an XMILE model (variable, range, element, lookup, macro, parameter and
function names, comments, units, external file and tab names) that is then loaded and
run by the batched engine and by the PySD engine.  The outcome must be a working model
or an sdfit error sentence, and the marker must never appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pytest

import sdfit
from sdfit.exceptions import ModelError, SdfitError
from sdfit.model import PysdModel
from sdfit.model.translate import translate

#: Replaced by the path of the marker the payload tries to create.
MARK = "MARKER"
#: Code that creates the marker (a folder): no spaces (names lose them), no commas (they
#: separate subscripts) and all lower case (PySD lower-cases macro and function names).
CODE = "__import__('os').mkdir('MARKER')"
CODE_DQ = '__import__("os").mkdir("MARKER")'

PAYLOADS = {
    "plain word": "harmless",  # the control: the model works with an ordinary name
    "subscript text": f"r'] if 0 else [{CODE}]))#",  # the reported range-name exploit
    "single quotes": f"m'+{CODE}+'",
    "single quotes, list": f"a']+[{CODE}]+['",
    "double quotes": f'm"+{CODE_DQ}+"',
    "docstring": f'x"""; {CODE}; """y',
    "triple single quotes": f"x'''; {CODE}; '''y",
    "backslash before quote": f"a\\\\',{CODE},'",
    "trailing backslash": "a\\",
    "newline": f"a\n{CODE}\n#",
    "f-string braces": f"{{{CODE}}}",
    "comment sign": f"#{CODE}",
}

CONTROLS = """
INITIAL TIME = 0 ~ ~ |
FINAL TIME = 2 ~ ~ |
TIME STEP = 1 ~ ~ |
SAVEPER = TIME STEP ~ ~ |
"""


def _quoted(name: str) -> str:
    """A Vensim name, in quotes (inner quotes escaped as Vensim does) unless it is a word."""
    if name.isalpha():
        return name
    return '"' + name.replace('"', '\\"') + '"'


def _no_bars(text: str) -> str:
    """Comments and units end at ``~`` and ``|``: the payloads have none, keep it so."""
    assert "~" not in text and "|" not in text
    return text


#: Vensim models with the payload ``p`` in one field (every model works with a plain word).
VENSIM = {
    "variable name": lambda p: f"{_quoted(p)} = 1 ~ ~ |\ny = {_quoted(p)} * 2 ~ ~ |\n",
    "comment": lambda p: f"x = 1\n~ persons\n~ {_no_bars(p)}\n|\n",
    "units": lambda p: f"x = 1\n~ {_no_bars(p).replace('[', '(')}\n~ a comment\n|\n",
    "range name": lambda p: (
        f"{_quoted(p)}: e1, e2 ~ ~ |\n"
        f"v[{_quoted(p)}] = {_quoted(p)} ~ ~ |\n"   # a range used as a value (1, 2)
        f"w = SUM(v[{_quoted(p)}!]) ~ ~ |\n"),
    "element name": lambda p: (
        f"dim: {_quoted(p)}, e2 ~ ~ |\n"
        f"v[dim] = dim ~ ~ |\nw = v[{_quoted(p)}] + {_quoted(p)} ~ ~ |\n"),
    "lookup name": lambda p: (
        f"{_quoted(p)}((0,0),(10,10)) ~ ~ |\ny = {_quoted(p)}(Time) ~ ~ |\n"),
    "macro name": lambda p: (
        f":MACRO: {_quoted(p)}(input)\n{_quoted(p)} = input * 2 ~ ~ |\n:END OF MACRO:\n"
        f"y = {_quoted(p)}(3) ~ ~ |\n"),
    "macro parameter": lambda p: (
        f":MACRO: twice({_quoted(p)})\ntwice = {_quoted(p)} * 2 ~ ~ |\n:END OF MACRO:\n"
        "y = twice(3) ~ ~ |\n"),
    "function name": lambda p: f"y = {_quoted(p)}(3) ~ ~ |\n",
    "external file name": lambda p: (
        f"c = GET DIRECT CONSTANTS('{p}', 'tab', 'A1') ~ ~ |\n"),
    "external tab name": lambda p: (
        f"c = GET DIRECT CONSTANTS('x\\\\', '{p}', 'A1') ~ ~ |\n"),
}


def vensim_model(field: str, payload: str) -> str:
    return "{UTF-8}\n" + VENSIM[field](payload) + CONTROLS


def _xmile(variables: str, dimensions: str = "") -> str:
    return textwrap.dedent("""\
        <xmile xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0" version="1.0">
        <header><vendor>sdfit tests</vendor><product>sdfit</product></header>
        <sim_specs method="Euler"><start>0</start><stop>2</stop><dt>1</dt></sim_specs>
        <dimensions>{dimensions}</dimensions>
        <model><variables>{variables}<aux name="z"><eqn>TIME</eqn></aux></variables></model>
        </xmile>
        """).format(variables=variables, dimensions=dimensions)


def _references(text: str) -> str:
    """XML text with every quote written as a character reference (``&#39;``)."""
    return escape(text).replace("'", "&#39;").replace('"', "&#34;")


#: XMILE models with the XML-escaped payload ``p`` (``a`` an attribute value with quotes)
#: in one field.
XMILE = {
    "variable name": lambda p, a: f"<aux name={a}><eqn>1</eqn></aux>",
    "documentation": lambda p, a: f'<aux name="x"><eqn>1</eqn><doc>{p}</doc></aux>',
    "units": lambda p, a: f'<aux name="x"><eqn>1</eqn><units>{p}</units></aux>',
    "graphical function name": lambda p, a: (
        f"<gf name={a}><xpts>0,10</xpts><ypts>0,10</ypts></gf>"),
    "range name": lambda p, a: (
        f'<aux name="v"><dimensions><dim name={a}/></dimensions><eqn>1</eqn></aux>'),
    "element name": lambda p, a: (
        '<aux name="v"><dimensions><dim name="d"/></dimensions><eqn>1</eqn></aux>'),
}


def xmile_model(field: str, payload: str, encode) -> str:
    text = encode(payload)
    attribute = quoteattr(payload) if encode is escape else f'"{text}"'
    variables = XMILE[field](text, attribute)
    if field == "range name":
        return _xmile(variables, f"<dim name={attribute}><elem name='e1'/>"
                                 "<elem name='e2'/></dim>")
    if field == "element name":
        return _xmile(variables, f"<dim name='d'><elem name={attribute}/>"
                                 "<elem name='e2'/></dim>")
    return _xmile(variables)


# -- loading and running -------------------------------------------------------------------
def _write(folder: Path, name: str, text: str) -> tuple[Path, Path]:
    """The model file in ``folder``, and the marker its payload would create."""
    folder.mkdir(parents=True)
    marker = folder / "marker"
    path = folder / name
    path.write_text(text.replace(MARK, str(marker)), encoding="utf-8")
    return path, marker


def _scalars(model) -> tuple[str, ...]:
    """Identifiers of the variables without subscripts every model above has (PySD's
    engine records those only)."""
    return tuple(model.variables[n].ident for n in ("x", "y", "w", "z", "c")
                 if n in model.variables)


def _outcome(engine: str, path: Path) -> str:
    """'ran', or the one-sentence sdfit error the model ended in (anything else raises)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if engine == "batched":
                sdfit.load_model(path).run(2)
            else:
                model = PysdModel.load(path)
                model.execute(1, {}, _scalars(model))
    except SdfitError as error:
        assert "\n" not in str(error), f"not one sentence: {error}"
        return str(error)
    return "ran"


#: Fields of models that never run: a function no engine knows, a missing external file.
NEVER_RUN = ("function name", "external file name", "external tab name")


def _check_all(tmp_path: Path, engine: str, field: str,
               cases: dict[str, tuple[str, str]]) -> None:
    """Load and run every case (name -> (file name, text)); no marker may appear, and the
    plain word must work (else the model itself is wrong and nothing was tested)."""
    for n, (case, (name, text)) in enumerate(cases.items()):
        path, marker = _write(tmp_path / f"case{n}", name, text)
        outcome = _outcome(engine, path)
        assert not marker.exists(), f"{case}: the model ran code ({engine} engine)"
        if "plain word" in case:
            assert (outcome == "ran") != (field in NEVER_RUN), f"{case}: {outcome}"


def _vensim_cases(field: str) -> dict[str, tuple[str, str]]:
    return {f"{field}, {kind}": ("model.mdl", vensim_model(field, payload))
            for kind, payload in PAYLOADS.items()}


def _xmile_cases(field: str) -> dict[str, tuple[str, str]]:
    return {f"{field}, {kind}, {encode.__name__}": (
        "model.xmile", xmile_model(field, payload, encode))
        for kind, payload in PAYLOADS.items() for encode in (escape, _references)}


# -- the reported exploits, one by one -------------------------------------------------------
def test_range_name_used_as_value_runs_no_code(tmp_path):
    """The batched compiler evaluated PySD's text for a range used as a value."""
    path, marker = _write(tmp_path / "m", "model.mdl",
                          vensim_model("range name", PAYLOADS["subscript text"]))
    model = sdfit.load_model(path)
    assert not marker.exists()
    np.testing.assert_array_equal(model.run(1).values["v"][0, -1], [1, 2])


def test_range_names_with_quotes_work_in_the_batched_engine(tmp_path):
    path, _ = _write(tmp_path / "m", "model.mdl", vensim_model("range name", "it's"))
    sim = sdfit.load_model(path).run(1)
    np.testing.assert_array_equal(sim.values["v"][0, -1], [1, 2])
    assert sim.values["w"][0, -1] == 3


def test_comments_run_no_code_in_the_pysd_engine(tmp_path):
    """PySD writes comments raw into a docstring of the Python it generates."""
    path, marker = _write(tmp_path / "m", "model.mdl",
                          vensim_model("comment", PAYLOADS["docstring"]))
    model = PysdModel.load(path)
    times, (x,) = model.execute(1, {}, ("v_x",))
    assert not marker.exists()
    np.testing.assert_array_equal(x, [[1, 1, 1]])


@pytest.mark.parametrize("field", ["macro name", "function name"])
def test_names_written_raw_by_pysd_run_no_code(tmp_path, field):
    """PySD writes macro and unknown function names unescaped into string literals."""
    path, marker = _write(tmp_path / "m", "model.mdl",
                          vensim_model(field, PAYLOADS["single quotes"]))
    with pytest.raises(ModelError, match="PySD would write unescaped"):
        PysdModel.load(path)
    assert not marker.exists()


def test_names_with_quotes_work_in_the_pysd_engine(tmp_path):
    """Variable names are written with repr() by PySD: quotes in them are harmless."""
    path, _ = _write(tmp_path / "m", "model.mdl", vensim_model("variable name", "it's"))
    model = PysdModel.load(path)
    _, (y,) = model.execute(1, {}, (model.variable("y").ident,))
    np.testing.assert_array_equal(y, [[2, 2, 2]])


@pytest.mark.parametrize("engine", ["batched", "pysd"])
def test_lookup_ranges_run_no_code(tmp_path, engine):
    """PySD's Vensim translator evaluated the text between a lookup's brackets."""
    text = "{UTF-8}\ntbl([" + CODE + "],(0,0),(10,10)) ~ ~ |\ny = tbl(Time) ~ ~ |\n" + CONTROLS
    path, marker = _write(tmp_path / "m", "model.mdl", text)
    with pytest.raises(ModelError, match="could not be parsed"):
        sdfit.load_model(path) if engine == "batched" else PysdModel.load(path)
    assert not marker.exists()


def test_lookup_ranges_that_are_numbers_still_work(tmp_path):
    text = "{UTF-8}\ntbl([(0,0)-(10,10)],(0,0),(10,10)) ~ ~ |\ny = tbl(Time) ~ ~ |\n" + CONTROLS
    path, _ = _write(tmp_path / "m", "model.mdl", text)
    np.testing.assert_array_equal(sdfit.load_model(path).run(1).values["y"][0], [0, 1, 2])


def test_xml_entity_declarations_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("confidential")
    text = _xmile('<aux name="x"><eqn>1</eqn><doc>&e;</doc></aux>').replace(
        "<xmile ", f'<!DOCTYPE xmile [<!ENTITY e SYSTEM "file://{secret}">]>\n<xmile ', 1)
    path, _ = _write(tmp_path / "m", "model.xmile", text)
    with pytest.raises(ModelError, match="DOCTYPE"):
        translate(path)


# -- every payload in every field, both engines ----------------------------------------------
@pytest.mark.parametrize("field", VENSIM)
def test_vensim_fields_run_no_code_in_the_batched_engine(tmp_path, field):
    _check_all(tmp_path, "batched", field, _vensim_cases(field))


@pytest.mark.parametrize("field", XMILE)
def test_xmile_fields_run_no_code_in_the_batched_engine(tmp_path, field):
    _check_all(tmp_path, "batched", field, _xmile_cases(field))


@pytest.mark.slow
@pytest.mark.parametrize("field", VENSIM)
def test_vensim_fields_run_no_code_in_the_pysd_engine(tmp_path, field):
    _check_all(tmp_path, "pysd", field, _vensim_cases(field))


@pytest.mark.slow
@pytest.mark.parametrize("field", XMILE)
def test_xmile_fields_run_no_code_in_the_pysd_engine(tmp_path, field):
    _check_all(tmp_path, "pysd", field, _xmile_cases(field))


# -- the same in fresh interpreters ------------------------------------------------------------
SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import sdfit
from sdfit.exceptions import SdfitError
from sdfit.model import PysdModel
for path in sys.argv[2:]:  # every exploit in this one interpreter, one after the other
    try:
        if sys.argv[1] == "batched":
            sdfit.load_model(path).run(2)
        else:
            model = PysdModel.load(path)
            model.execute(1, {}, tuple(model.variables[n].ident for n in ("x", "y", "w")
                                       if n in model.variables))
    except SdfitError as error:
        print(error)
"""

EXPLOITS = {
    "range used as a value": ("model.mdl", vensim_model("range name",
                                                        PAYLOADS["subscript text"])),
    "comment": ("model.mdl", vensim_model("comment", PAYLOADS["docstring"])),
    "macro name": ("model.mdl", vensim_model("macro name", PAYLOADS["single quotes"])),
    "function name": ("model.mdl", vensim_model("function name", PAYLOADS["single quotes"])),
    "lookup range": ("model.mdl", "{UTF-8}\ntbl([" + CODE + "],(0,0),(1,1)) ~ ~ |\n"
                     "y = tbl(Time) ~ ~ |\n" + CONTROLS),
    "xmile documentation": ("model.xmile", xmile_model("documentation", PAYLOADS["docstring"],
                                                       escape)),
}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["batched", "pysd"])
def test_exploits_run_no_code_in_a_fresh_process(tmp_path, engine):
    """Every exploit loaded and run in a fresh interpreter (one for all of them: the
    markers are per exploit, so each case is still judged alone)."""
    written = {case: _write(tmp_path / case.replace(" ", "-"), name, text)
               for case, (name, text) in EXPLOITS.items()}
    src = str(Path(sdfit.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", SCRIPT, engine,
                           *(str(path) for path, _ in written.values())], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": src})
    assert done.returncode == 0, done.stderr
    for case, (_, marker) in written.items():
        assert not marker.exists(), f"{case}: the model ran code ({engine} engine)"
