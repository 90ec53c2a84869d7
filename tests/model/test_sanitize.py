"""What keeps model text from running as code in PySD's translators and builder
(sdfit.model.sanitize)."""

from __future__ import annotations

import pytest
from pysd.translators.vensim import vensim_element
from pysd.translators.xmile import xmile_element

from sdfit.exceptions import ModelError
from sdfit.model import sanitize
from sdfit.model.runtime.pysd_engine import load_pysd
from sdfit.model.translate import translate

CONTROLS = "INITIAL TIME = 0 ~ ~ |\nFINAL TIME = 2 ~ ~ |\nTIME STEP = 1 ~ ~ |\n" \
           "SAVEPER = 1 ~ ~ |\n"


def _translated(tmp_path, equations: str):
    path = tmp_path / "model.mdl"
    path.write_text("{UTF-8}\n" + equations + CONTROLS, encoding="utf-8")
    return translate(path), path


def test_pysds_translators_evaluate_literals_only(tmp_path):
    _translated(tmp_path, "x = 1 ~ ~ |\n")  # installs the guard
    for module in (vensim_element, xmile_element):
        assert module.eval("[(0, 0), (1, -2.5e3)]") == [(0, 0), (1, -2500.0)]
        assert module.eval("'a file.xlsx'") == "a file.xlsx"
        with pytest.raises(ValueError, match="is not a number"):
            module.eval("__import__('os').getcwd()")
        with pytest.raises(ValueError, match="is not a number"):
            module.eval("9 ** 9 ** 9")  # no arithmetic either: it could take forever


@pytest.mark.parametrize("equations, what", [
    ("\"r'x\": a, b ~ ~ |\nv[\"r'x\"] = 1 ~ ~ |\n",
     "the name of the subscript range '\"r'x\"' contains \"'\""),
    (":MACRO: \"m'x\"(p)\n\"m'x\" = p ~ ~ |\n:END OF MACRO:\ny = \"m'x\"(1) ~ ~ |\n",
     "the name of the macro '\"m'x\"' contains \"'\""),
    (":MACRO: m(\"p'x\")\nm = \"p'x\" ~ ~ |\n:END OF MACRO:\ny = m(1) ~ ~ |\n",
     "a parameter of the macro 'm' contains \"'\""),
    ("y = \"f'x\"(1) ~ ~ |\n",
     "the name of the function called in the equation of 'y' contains \"'\""),
    ("c = GET DIRECT CONSTANTS('data.xlsx', 't\\\\x', 'A1') ~ ~ |\n",
     "the tab in the equation of 'c' contains '\\\\'"),
    ("c = GET DIRECT CONSTANTS('data\\\\', 'tab', 'A1') ~ ~ |\n",
     "the file in the equation of 'c' contains '\\\\'"),
])
def test_text_pysd_writes_raw_is_refused_naming_field_and_variable(tmp_path, equations, what):
    model, path = _translated(tmp_path, equations)
    with pytest.raises(ModelError) as error:
        sanitize.for_pysd(model, str(path))
    assert what in str(error.value) and str(path) in str(error.value)


def test_what_pysd_writes_with_repr_may_hold_quotes(tmp_path):
    model, path = _translated(tmp_path, (
        "dim: \"it's\", \"b\\\\c\" ~ ~ |\n"           # elements: written by repr()
        "\"o'neil\"[dim] = 1 ~ \"kg's\" ~ doc with ''' and \"\"\" |\n"
        "c = GET DIRECT CONSTANTS('C:\\\\data\\\\in.xlsx', 'tab', 'A1') ~ ~ |\n"))
    sanitize.for_pysd(model, str(path))
    main = next(s for s in model.sections if s.type == "main")
    assert all(e.documentation == "" for e in main.elements)  # written raw: dropped


def test_xml_without_declarations_passes(tmp_path):
    path = tmp_path / "model.xmile"
    path.write_text('<?xml version="1.0"?><xmile><doc>a &lt; b &amp; &#39;c&#39;</doc></xmile>')
    sanitize.check_xml(path)
    path.write_text('<?xml version="1.0"?>\n<!doctype xmile><xmile/>')
    with pytest.raises(ModelError, match="declares a DOCTYPE or XML entities"):
        sanitize.check_xml(path)


def test_a_module_pysd_generated_passes_the_second_check(tmp_path):
    _, path = _translated(tmp_path, (
        "dim: a, b ~ ~ |\nv[dim] = dim ~ ~ |\nw = SUM(v[dim!]) + tbl(Time) ~ ~ |\n"
        "tbl((0, 0), (2, 1)) ~ ~ |\ns = INTEG(w, 0) ~ ~ |\n"
        ":MACRO: twice(input)\ntwice = input * 2 ~ ~ |\n:END OF MACRO:\n"
        "m = twice(s) ~ ~ |\n"))
    folder = tmp_path / "build"
    folder.mkdir()
    model = load_pysd(path, folder)  # runs check_pysd_module on every module it writes
    assert model.run()["m"].iloc[-1] == 2 * (3 + 3.5)  # s: 0, 3.5 (w = 3 + 0.5), 7


@pytest.mark.parametrize("line, what", [
    ("import os", "an import of os"),
    ("from . import x", "an import of"),
    ("x = eval('1')", "the name eval"),
    ("x = getattr(Path, 'home')", "the name getattr"),
    ("x = __builtins__", "the name __builtins__"),
    ("x = Path.__class__", "the attribute __class__"),
])
def test_the_second_check_refuses_what_pysd_never_writes(tmp_path, line, what):
    module = tmp_path / "model.py"
    module.write_text(f"from pathlib import Path\nimport numpy as np\n{line}\n")
    with pytest.raises(ModelError, match="which PySD never writes") as error:
        sanitize.check_pysd_module(module, "model.mdl")
    assert what in str(error.value)
