"""A stochastic model fitted per unit: each unit's draws are its own (common random numbers
across the solver's iterations), so a fit does not depend on how units are chunked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sdfit
from sdfit import Parameter, Problem
from sdfit.data import read_panel

NOISY = """{UTF-8}
stock = INTEG(inflow - rate * stock, 100)
~~|
inflow = 10 + RANDOM NORMAL(-100, 100, 0, 2, 0)
~~|
rate = 0.1
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 10
~~|
TIME STEP = 0.25
~~|
SAVEPER = 1
~~|
"""


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    path = tmp_path_factory.mktemp("noisy") / "noisy.mdl"
    path.write_text(NOISY)
    model = sdfit.load_model(path)
    assert model.random
    rng = np.random.default_rng(0)
    rows = [{"unit": u, "t": t, "stock": 100 * np.exp(-r * t) + 100 * (1 - np.exp(-r * t))
             + rng.normal(0, 1)}
            for u, r in enumerate(rng.uniform(0.05, 0.3, 10)) for t in range(1, 11)]
    return model, read_panel(pd.DataFrame(rows), units=["unit"], time="t")


def test_results_do_not_depend_on_the_chunking(noisy):
    model, panel = noisy
    problem = Problem([Parameter("rate", x0=0.1, bounds=(0, 1))], seed=7)
    tables = [sdfit.fit(model, panel, problem, backend="serial", chunk_size=size,
                        progress=False).table for size in (1, 3, 10)]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    assert tables[0]["success"].all()
    # another seed draws other numbers, so other optima
    other = sdfit.fit(model, panel, Problem(problem.parameters, seed=8), backend="serial",
                      progress=False).table
    assert not np.allclose(other["rate"], tables[0]["rate"])


def test_a_units_draws_are_its_own_when_other_units_are_dropped(noisy):
    model, panel = noisy
    problem = Problem([Parameter("rate", x0=0.1, bounds=(0, 1))], seed=7)
    whole = sdfit.fit(model, panel, problem, backend="serial", progress=False).table
    long = panel.to_long()
    long.loc[(long["unit"] == 1) & (long["time"] == 5), "value"] = np.inf
    broken = read_panel(long.rename(columns={"time": "t"}).pivot(
        index=["unit", "t"], columns="variable", values="value").reset_index(),
        units=["unit"], time="t")
    kept = sdfit.fit(model, broken, problem, backend="serial", progress=False,
                     drop_invalid=True).table
    assert kept["unit"].tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True),
                                  whole[whole["unit"] != 1].reset_index(drop=True))
