"""The batched engine against PySD's own simulation of the same model file."""

from __future__ import annotations

import shutil

import numpy as np
import pysd
import pytest

import sdfit
from sdfit import ModelError, UnsupportedFeatureError
from sdfit.datasets import aging_chain_path

STOCKS = [f"dec {k}" for k in range(1, 10)]
RATES = [f"dec {k} loss rate" for k in range(1, 10)]


def _compare_with_pysd(path, tmp_path, batch=6, seed=1):
    model = sdfit.load_model(path)
    copy = tmp_path / path.name  # PySD writes its generated .py beside the model file
    shutil.copy(path, copy)
    rng = np.random.default_rng(seed)
    rates = {r: rng.uniform(-0.05, 0.3, batch) for r in RATES}
    stocks = {s: rng.uniform(10, 1e5, batch) for s in STOCKS}
    sim = model.run(batch, params=rates, initial=stocks)
    reference = pysd.read_vensim(str(copy))
    for unit in range(batch):
        expected = reference.run(
            params={r: v[unit] for r, v in rates.items()},
            initial_condition=(reference.components.initial_time(),
                               {s: v[unit] for s, v in stocks.items()}))
        reference.reload()  # PySD keeps params across runs
        ours = sim.to_frame(unit)
        assert list(ours.index) == list(expected.index)
        for column in expected.columns:
            np.testing.assert_allclose(ours[column], expected[column], rtol=1e-9, atol=0,
                                       err_msg=f"{column} of unit {unit}")
    return model


def test_bundled_aging_chain_equals_pysd(tmp_path):
    _compare_with_pysd(aging_chain_path(), tmp_path)


def test_original_aging_chain_equals_pysd(original_model_path, tmp_path):
    model = _compare_with_pysd(original_model_path, tmp_path)
    assert model.stocks == STOCKS
    assert (model.initial_time, model.final_time, model.time_step) == (2000, 2010, 0.125)


def test_return_times_and_start_time_like_pysd_initial_condition(aging_chain):
    sim = aging_chain.run(2, params={"dec 3 loss rate": [0.0, 0.1]}, start_time=2004,
                          return_times=[2006, 2010], return_columns=["dec 3"])
    assert list(sim.times) == [2006, 2010]
    assert sim.values["dec 3"].shape == (2, 2)
    full = aging_chain.run(1, start_time=2004, return_columns=["dec 3"])
    assert full.times[0] == 2004 and len(full.times) == 6 * 8 + 1


def test_batch_model_pickles_and_runs_after_unpickling(aging_chain):
    import pickle

    copy = pickle.loads(pickle.dumps(aging_chain))
    a = copy.run(3, params={"dec 2 loss rate": [0.1, 0.2, 0.3]}).values["dec 2"]
    b = aging_chain.run(3, params={"dec 2 loss rate": [0.1, 0.2, 0.3]}).values["dec 2"]
    np.testing.assert_array_equal(a, b)


def _write(tmp_path, body, name="m.mdl"):
    controls = ("INITIAL TIME = 0\n~~|\nFINAL TIME = 1\n~~|\nTIME STEP = 0.5\n~~|\n"
                "SAVEPER = TIME STEP\n~~|\n")
    path = tmp_path / name
    path.write_text(body + controls)
    return path


@pytest.mark.parametrize("body, construct, variable", [
    ("t((0,0),(1,1))\n~~|\ny = RANDOM LOOKUP(t, 0, 1, 0, 1, 0)\n~~|\n",
     "the function RANDOM LOOKUP", "y"),
    ("y = GET TIME VALUE(1, 0, 0)\n~~|\n",
     "GET TIME VALUE other than relative to the current time", "y"),
    ("y = A FUNCTION OF(Time)\n~~|\n", "A FUNCTION OF (an equation left undefined)", "y"),
])
def test_unsupported_construct_names_construct_variable_and_file(tmp_path, body, construct,
                                                                  variable):
    with pytest.raises(UnsupportedFeatureError) as info:
        sdfit.load_model(_write(tmp_path, body))
    assert info.value.construct == construct and info.value.variable == variable
    assert f"'{variable}'" in str(info.value) and "m.mdl" in str(info.value)


@pytest.mark.parametrize("body, message", [
    ("a = 1 +\n~~|\n", "could not be parsed"),
    ("a = b * 2\n~~|\n", "refers to 'b'"),
    ("a = b\n~~|\nb = a\n~~|\n", "circular"),
    ("y := GET XLS DATA('f.xlsx', 's', '1', 'B2')\n~~|\n",
     "reading the data of 'y' failed: .*f.xlsx' not found"),
])
def test_bad_models_raise_model_error(tmp_path, body, message):
    with pytest.raises(ModelError, match=message):
        sdfit.load_model(_write(tmp_path, body))


def test_missing_and_wrong_suffix_model_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        sdfit.load_model(tmp_path / "nope.mdl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ModelError, match="suffix"):
        sdfit.load_model(tmp_path / "m.txt")


def test_unknown_names_get_suggestions(aging_chain):
    with pytest.raises(ModelError, match="Did you mean 'dec 3 loss rate'"):
        aging_chain.run(1, params={"dec 3 los rate": 0.1})
    with pytest.raises(ModelError, match="not a stock"):
        aging_chain.run(1, initial={"dec 3 loss rate": 0.1})


def test_each_step_computes_only_what_states_and_recorded_values_need(tmp_path):
    model = sdfit.load_model(_write(
        tmp_path, "x = 1 + Time\n~~|\ns = INTEG(x, 0)\n~~|\nreport = s * 2\n~~|\n"))
    assert "v_report =" not in model._program(("v_s",)).source
    assert "v_report =" in model._program(("v_report",)).source
    sim = model.run(2, return_columns=["s", "report"])
    np.testing.assert_allclose(sim.values["report"], 2 * sim.values["s"])
