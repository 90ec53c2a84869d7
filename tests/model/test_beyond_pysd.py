"""What public models use and PySD's translator or runtime cannot run: inline comments,
lookups with a repeated x, DELAY MATERIAL, SINTEG; checked against hand-derived values.
And what a modeller meets along the way: parse errors located in the file, quoted names,
guarded divisions, the engine's own failures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import sdfit
from sdfit import FallbackWarning, ModelError
from sdfit.exceptions import EngineError
from sdfit.model import PysdModel, open_model
from sdfit.model.runtime import functions

CONTROLS = """INITIAL TIME = 0
~~|
FINAL TIME = 8
~~|
TIME STEP = 1
~~|
SAVEPER = TIME STEP
~~|
"""


def _run(tmp_path, body: str, columns, batch: int = 1, **params):
    path = tmp_path / "m.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROLS)
    sim = sdfit.load_model(path).run(batch, params=params, return_columns=columns)
    return sim.times, sim.values


def test_inline_comments_are_ignored_wherever_they_are(tmp_path):
    body = ("rate = 0.5 {per year} * {half of} 2\n~ 1/year {not a comment: units} ~ doc {too}|\n"
            "s = INTEG({inflow} rate {\n spanning lines}, 1)\n~~|\n"
            '"quoted {not a comment}" = s * 2\n~~|\n')
    _, values = _run(tmp_path, body, ["s", "quoted {not a comment}", "rate"])
    assert values["rate"][0, 0] == 1.0
    np.testing.assert_array_equal(values["s"][0], 1 + np.arange(9.0))
    np.testing.assert_array_equal(values["quoted {not a comment}"][0], 2 + 2 * np.arange(9.0))


def test_a_repeated_x_is_a_jump(tmp_path):
    """Below the repeated x the table approaches the first point, at and above it follows
    the last one (Vensim's semantics); subscripted tables and WITH LOOKUP alike."""
    body = ("tbl((0,0),(2,0),(2,4),(4,8),(4,0))\n~~|\nx = Time - 1\n~~|\ny = tbl(x)\n~~|\n"
            "w = WITH LOOKUP(x, ((0,0),(2,0),(2,4),(4,8),(4,0)))\n~~|\n"
            "dim: a, b\n~~|\nt2[dim]((0,0),(2,0),(2,4),(4,8),(4,0))\n~~|\n"
            "z[dim] = t2[dim](x)\n~~|\n")
    _, values = _run(tmp_path, body, ["y", "w", "z[b]"])
    # x = -1, 0, 1, 2, 3, 4, 5, 6, 7
    expected = [0, 0, 0, 4, 6, 0, 0, 0, 0]
    for name in ("y", "w", "z[b]"):
        np.testing.assert_array_equal(values[name][0], expected, err_msg=name)
    xs, ys = np.array([0.0, 2, 2, 4]), np.array([0.0, 0, 4, 8])
    np.testing.assert_array_equal(functions.lookup(np.array([1.999, 2.0, 3.0]), xs, ys,
                                                   jumps=True), [0, 4, 6])


def test_delay_material_conserves_what_enters_when_its_delay_time_changes(tmp_path):
    """Each input leaves round(delay time / TIME STEP) steps after it entered; what leaves
    together adds up; a step nothing leaves gives the missing value (-1 here)."""
    body = ("x = 10 + Time\n~~|\n"
            "shorter = DELAY MATERIAL(x, IF THEN ELSE(Time < 3, 3, 1), 7, -1)\n~~|\n"
            "longer = DELAY MATERIAL(x, IF THEN ELSE(Time < 2, 1, 3), 7, -1)\n~~|\n"
            "fixed = DELAY MATERIAL(x, 2, 7, -1)\n~~|\nreference = DELAY FIXED(x, 2, 7)\n~~|\n")
    _, values = _run(tmp_path, body, ["shorter", "longer", "fixed", "reference"], batch=2)
    # inputs 10, 11, 12, ...: entering at 0, 1, 2 with 3 steps, at 3 on with 1 step
    np.testing.assert_array_equal(values["shorter"][0], [7, 7, 7, 10, 24, 26, 15, 16, 17])
    # entering at 0, 1 with 1 step, from 2 on with 3 steps: nothing leaves at 3 and 4
    np.testing.assert_array_equal(values["longer"][1], [7, 10, 11, -1, -1, 12, 13, 14, 15])
    np.testing.assert_array_equal(values["fixed"], values["reference"])


def test_sinteg_restricts_the_values_of_its_stock(tmp_path):
    body = ("q = SINTEG(0.3, 0.04, 0, 1, 0.1, :NA:, :NA:)\n~~|\n"
            "snap = SINTEG(-0.26, 1, :NA:, :NA:, :NA:, 0, 0.1)\n~~|\n"
            "plain = SINTEG(-0.26, 1, :NA:, :NA:, :NA:, :NA:, :NA:)\n~~|\n")
    _, values = _run(tmp_path, body, ["q", "snap", "plain"])
    np.testing.assert_allclose(values["q"][0], [0, 0.3, 0.6, 0.9, 1, 1, 1, 1, 1], atol=1e-12)
    np.testing.assert_allclose(values["snap"][0], [1, 0.74, 0.48, 0.22, 0, -0.26, -0.52,
                                                   -0.78, -1.04], atol=1e-12)
    np.testing.assert_allclose(values["plain"][0], 1 - 0.26 * np.arange(9), atol=1e-12)
    assert sdfit.load_model(tmp_path / "m.mdl").variable("q").kind == "stock"


def test_a_parse_error_names_the_variable_and_its_place_in_the_file(tmp_path):
    path = tmp_path / "bad.mdl"
    path.write_text("{UTF-8}\nx = 5\n~~|\n\ny = x *\n   (2 + ) \n~ units ~ doc|\n" + CONTROLS)
    with pytest.raises(ModelError, match=r"could not be parsed at line 5, column 7 in the "
                                         r"equation of 'y': cannot read from '\* \(2 \+ \)'"):
        sdfit.load_model(path)


def test_an_xmile_parse_error_names_its_variable_and_place(tmp_path):
    path = tmp_path / "bad.xmile"
    path.write_text('''<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
  <header><vendor>x</vendor><product version="1">x</product></header>
  <sim_specs><start>0</start><stop>1</stop><dt>0.5</dt></sim_specs>
  <model><variables>
    <aux name="ok"><eqn>1</eqn></aux>
    <aux name="broken">
      <eqn>ok * (2 + </eqn>
    </aux>
  </variables></model>
</xmile>
''')
    with pytest.raises(ModelError, match=r"at line 8, column 14 in the equation of 'broken'"):
        sdfit.load_model(path)


def test_quoted_names_lose_their_quotes(tmp_path):
    body = '"Attack rate (Beta)" = 0.3\n~~|\n"s" = INTEG("Attack rate (Beta)", 1)\n~~|\n'
    _, values = _run(tmp_path, body, ["Attack rate (Beta)", '"s"'])
    model = sdfit.load_model(tmp_path / "m.mdl")
    assert model.constants == ["Attack rate (Beta)"] and model.stocks == ["s"]
    assert PysdModel.load(tmp_path / "m.mdl").constants == ["Attack rate (Beta)"]
    np.testing.assert_allclose(values['"s"'][0], 1 + 0.3 * np.arange(9))


def test_untaken_branches_neither_raise_nor_warn(tmp_path):
    body = ("r = 0\n~~|\ny = IF THEN ELSE(r > 0, 1 / r, 0)\n~~|\n"
            "z = IF THEN ELSE(r >= 0, 0, LN(r) + SQRT(r) + r ^ -0.5)\n~~|\n"
            "s = INTEG(y + z, 1)\n~~|\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, values = _run(tmp_path, body, ["y", "z", "s"])
        np.testing.assert_array_equal(values["s"][0], np.ones(9))
        _, values = _run(tmp_path, body, ["y", "s"], batch=2, r=np.array([0.0, 2.0]))
    np.testing.assert_array_equal(values["y"][:, 0], [0.0, 0.5])
    _, values = _run(tmp_path, "r = 0\n~~|\ny = 1 / r\n~~|\n", ["y"])  # a taken branch
    assert np.isinf(values["y"]).all()  # the unit's fit fails as a row, nothing raises


def test_the_engines_own_failures_are_engine_errors_and_fall_back(tmp_path, monkeypatch):
    path = tmp_path / "m.mdl"
    path.write_text("{UTF-8}\nr = 2\n~~|\ny = IF THEN ELSE(r > 0, 1 / r, 0)\n~~|\n" + CONTROLS)
    model = sdfit.load_model(path)

    def broken(*args):
        raise IndexError("a bug in the engine")

    broken.__module__ = functions.__name__  # as the program's own built-ins are
    monkeypatch.setattr(functions, "if_then_else", broken)
    with pytest.raises(EngineError, match="IndexError: a bug in the engine"):
        model.run(2)
    monkeypatch.setattr(sdfit.model.engine, "load_model", lambda p: broken())
    with pytest.warns(FallbackWarning, match="could not compile .*IndexError: a bug"):
        assert isinstance(open_model(path), PysdModel)
    with pytest.raises(EngineError, match="could not compile"):
        open_model(path, "batched")


def test_whole_number_initial_values_and_long_decimals_are_kept(tmp_path):
    """Where PySD is wrong (README, Differences from PySD): it truncates the first step of
    SMOOTHI with an initial value of 1 (its stages are an integer array) and writes lookup
    numbers with 8 decimals."""
    path = tmp_path / "m.mdl"
    path.write_text("{UTF-8}\nx = 1.336\n~~|\ns = SMOOTHI(x, 2, 1)\n~~|\n"
                    "d = DELAY1I(x, 2, 1)\n~~|\nt((0, 0.123456789123), (1, 1))\n~~|\n"
                    "y = t(0)\n~~|\nINITIAL TIME = 0\n~~|\nFINAL TIME = 1\n~~|\n"
                    "TIME STEP = 0.5\n~~|\nSAVEPER = TIME STEP\n~~|\n")
    values = sdfit.load_model(path).run(1, return_columns=["s", "d", "y"]).values
    np.testing.assert_allclose(values["s"][0], [1, 1.084, 1.147], rtol=1e-14)
    np.testing.assert_allclose(values["d"][0], [1, 1.084, 1.147], rtol=1e-14)
    assert values["y"][0, 0] == 0.123456789123


def test_a_pulse_train_pulses_at_its_end_time_as_in_vensims_output():
    """SDEverywhere's pulsetrain model and the output Vensim gave for it: a pulse starts at
    the last pulse time (30) itself; PySD stops before it."""
    from sdfit.conformance import read_output

    folder = Path(__file__).parents[1] / "models" / "public" / "sdeverywhere" / "pulsetrain"
    sim = sdfit.load_model(folder / "pulsetrain.mdl").run(1, return_columns=["p"])
    vensim = read_output(folder / "pulsetrain.dat")["p"]
    np.testing.assert_array_equal(sim.values["p"][0], vensim.loc[sim.times].to_numpy())
    assert sim.values["p"][0][sim.times == 30] == 1
