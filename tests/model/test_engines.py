"""The two engines: batched, and PySD's own runtime unit by unit as the fallback."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pysd
import pytest

import sdfit
from sdfit import FallbackWarning, UnsupportedFeatureError
from sdfit.cli import main
from sdfit.datasets import aging_chain, synthetic_panel
from sdfit.demo import DEMO_PROBLEM, PLANTED
from sdfit.files import read_csv
from sdfit.model import PysdModel
from sdfit.problem import Parameter, Problem

#: A model with a random function whose range is empty (deterministic: fits have a right
#: answer).  The batched engine compiles random functions; the tests of the fallback
#: switch them off in its compiler (``without_random_uniform``) to have a construct PySD
#: runs and the batched engine does not.
SUBSCRIPTED = """{UTF-8}
dim: a, b
~~|
stock[dim] = INTEG(-rate * stock[dim], init[dim])
~~|
init[dim] = 100, 200
~~|
rate = 0.1
~~|
noise = RANDOM UNIFORM(0, 0, 1)
~~|
total = SUM(stock[dim!]) * (1 + noise)
~~|
mean life = 1 / rate
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 10
~~|
TIME STEP = 0.5
~~|
SAVEPER = TIME STEP
~~|
"""
RATES = [0.05, 0.1, 0.2]
DECAY = Problem([Parameter("rate", x0=0.12, bounds=(0, 1))], target_times=[5, 10],
                targets=["total"])


@pytest.fixture
def without_random_uniform(monkeypatch):
    """The batched compiler without RANDOM UNIFORM (and no compiled model from the cache)."""
    from sdfit.model.compiler import cache, randoms

    monkeypatch.setattr(randoms, "FUNCTIONS", {k: v for k, v in randoms.FUNCTIONS.items()
                                               if k != "random_uniform"})
    monkeypatch.setattr(cache, "ENABLED", False)


@pytest.fixture(scope="module")
def subscripted(tmp_path_factory):
    """The subscripted model and a long-format panel simulated by PySD itself."""
    folder = tmp_path_factory.mktemp("subscripted")
    path = folder / "decay.mdl"
    path.write_text(SUBSCRIPTED)
    shutil.copytree(folder, folder / "pysd")
    reference = pysd.read_vensim(str(folder / "pysd" / "decay.mdl"))
    rows = []
    for unit, rate in enumerate(RATES):
        run = reference.run(params={"rate": rate}, return_timestamps=[0, 5, 10],
                            return_columns=["total"])
        reference.reload()
        rows += [(f"u{unit}", t, "total", v) for t, v in run["total"].items()]
    data = folder / "data.csv"
    pd.DataFrame(rows, columns=["unit", "time", "variable", "value"]).to_csv(data, index=False)
    return path, data


@pytest.mark.slow
def test_both_engines_fit_the_identifiable_aging_chain_alike():
    model = aging_chain()
    panel, planted = synthetic_panel(
        model, 3, PLANTED | {"dec 1 loss rate": (0.05, 0.05)},
        {f"dec {k}": (100.0, 20000.0) for k in range(1, 10)}, [2010], seed=3)
    results = {engine: sdfit.fit(model, panel, DEMO_PROBLEM, backend="serial", progress=False,
                                 engine=engine)
               for engine in ("batched", "pysd")}
    batched, by_pysd = results["batched"].table, results["pysd"].table
    assert list(batched.columns) == list(by_pysd.columns)
    assert results["pysd"].run.engine == "pysd" and by_pysd["success"].all()
    for table in (batched, by_pysd):
        np.testing.assert_allclose(table[list(PLANTED)], planted[list(PLANTED)], atol=1e-6)
        assert (table["sse"] < 1e-12).all()
    np.testing.assert_allclose(by_pysd[list(PLANTED)], batched[list(PLANTED)], atol=1e-6)


def test_pysd_model_runs_like_the_batched_engine(tmp_path):
    batched = aging_chain()
    by_pysd = PysdModel.load(batched.path)
    assert by_pysd.names() == batched.names() and by_pysd.stocks == batched.stocks
    overrides = {"v_initial_time": 2000.0, batched.variable("dec 3 loss rate").ident:
                 np.array([0.0, 0.1]), batched.variable("dec 2").ident: np.array([5.0, 50.0])}
    record = (batched.variable("dec 3").ident,)
    ours = batched.execute(2, overrides, record, 2010, [2005, 2010])
    theirs = by_pysd.execute(2, overrides, record, 2010, [2005, 2010])
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=1e-12)


def test_auto_engine_falls_back_to_pysd_with_a_warning(subscripted, without_random_uniform):
    path, data = subscripted
    with pytest.raises(UnsupportedFeatureError, match="RANDOM UNIFORM"):
        sdfit.fit(path, data, DECAY, backend="serial", progress=False, engine="batched")
    with pytest.warns(FallbackWarning, match="does not support the function RANDOM UNIFORM"):
        result = sdfit.fit(path, data, DECAY, backend="processes", workers=2, progress=False)
    assert result.run.engine == "pysd" and result.run.chunks == 3
    assert list(result.table.columns[:7]) == ["unit", "rate", "sse", "success", "status",
                                              "message", "nfev"]  # then diagnostics
    np.testing.assert_allclose(result.table["rate"], RATES, rtol=1e-6)


def test_pysd_engine_refuses_a_missing_model_in_one_sentence(tmp_path):
    with pytest.raises(sdfit.ModelError, match="does not exist"):
        sdfit.fit(tmp_path / "nope.mdl", tmp_path / "data.csv", DECAY, engine="pysd")


def test_pysd_engine_gives_nan_not_a_crash_for_a_failing_unit(subscripted):
    model = PysdModel.load(subscripted[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PySD computes in Python floats: 1 / 0 raises ZeroDivisionError for that unit
        times, (life,) = model.execute(2, {"v_rate": np.array([0.1, 0.0])}, ("v_mean_life",),
                                       10, [5, 10])
    assert list(times) == [5, 10]
    np.testing.assert_array_equal(life, [[10, 10], [np.nan, np.nan]])


def test_cli_warns_and_fits_with_pysd_or_refuses_with_batched(subscripted, tmp_path, capsys,
                                                              without_random_uniform):
    path, data = subscripted
    flags = ["--model", str(path), "--data", str(data), "--param", "rate=0.12",
             "--target-times", "5", "10", "--targets", "total", "--backend", "serial",
             "--no-figures", "-q"]
    assert main(["fit", *flags, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "sdfit: warning: The batched engine does not support the function RANDOM" in err
    np.testing.assert_allclose(read_csv(tmp_path / "out" / "params.csv")["rate"], RATES,
                               rtol=1e-6)
    assert main(["fit", *flags, "--out", str(tmp_path / "no"), "--engine", "batched"]) == 2
    assert "RANDOM UNIFORM is not supported by the batched engine" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
