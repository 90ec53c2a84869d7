"""Real panels: observations at irregular times per unit (off the TIME STEP grid), few
observations, per-unit inputs, the model's own initial stocks — checked against an
independent NumPy Euler and against PySD."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

import sdfit
from planted import DT, PK, irregular_panel
from sdfit import Parameter, Problem
from sdfit.data import read_panel
from sdfit.datasets import EXAMPLES
from sdfit.objective import Objective
from sdfit.resolution import resolve


@pytest.fixture(scope="module")
def pk_model():
    return sdfit.load_model(EXAMPLES / "theophylline.mdl")


def test_irregular_off_grid_times_recover_planted_parameters(pk_model):
    frame, truth = irregular_panel(40, seed=1)
    assert not np.allclose(frame["Time"] / DT, np.round(frame["Time"] / DT))  # off the grid
    panel = read_panel(frame, units=["Subject"], time="Time")
    result = sdfit.fit(pk_model, panel, PK, backend="serial", progress=False)
    table = result.table
    assert table["success"].all(), table["message"].tolist()
    counts = frame.groupby("Subject", sort=False).size().to_numpy()
    assert table["n_obs"].tolist() == counts.tolist() and len(set(counts)) > 1
    np.testing.assert_allclose(table[["ka", "ke", "volume"]], truth[["ka", "ke", "volume"]],
                               rtol=1e-6)
    # every observation is in the targets table, at its own time, with its fitted value
    assert len(result.targets) == len(frame)
    np.testing.assert_allclose(result.targets["fitted"], frame["conc"], rtol=1e-7, atol=1e-9)


def test_a_unit_with_two_observations_and_three_parameters_is_a_flagged_row(pk_model):
    frame, _ = irregular_panel(6, seed=2)
    few = frame[frame["Subject"] != "s3"]
    few = pd.concat([few, frame[frame["Subject"] == "s3"].head(2)])
    with pytest.warns(sdfit.IdentifiabilityWarning):
        result = sdfit.fit(pk_model, read_panel(few, units=["Subject"], time="Time"), PK,
                           backend="serial", progress=False)
    row = result.table.set_index("Subject").loc["s3"]
    assert row["n_obs"] == 2 and row["rank"] <= 2
    assert not row[["ka_identifiable", "ke_identifiable", "volume_identifiable"]].all()
    assert np.isnan(row["ka_stderr"])
    others = result.table[result.table["Subject"] != "s3"]
    assert others["success"].all() and (others["rank"] == 3).all()


def test_per_unit_doses_give_what_pysd_gives_with_the_same_doses(pk_model, tmp_path):
    """Objective values at planted parameters (inputs taken from the data, one per unit)
    equal PySD's own runs with each unit's dose and parameters set."""
    import pysd

    rng = np.random.default_rng(3)
    times = np.array([0.25, 1.0, 2.5, 6.0, 12.0, 24.0])  # on the grid: PySD returns these
    units = pd.DataFrame({"ka": rng.uniform(0.8, 3, 4), "ke": rng.uniform(0.05, 0.2, 4),
                          "volume": rng.uniform(0.3, 0.7, 4), "dose": rng.uniform(3, 6, 4)})
    shutil.copy(EXAMPLES / "theophylline.mdl", tmp_path / "pk.mdl")
    reference = pysd.read_vensim(str(tmp_path / "pk.mdl"))
    rows = []
    for u, values in units.iterrows():
        run = reference.run(params=values.to_dict(), return_timestamps=times,
                            return_columns=["conc"])
        reference.reload()
        rows += [{"id": u, "Time": t, "Dose": values["dose"], "conc": c}
                 for t, c in run["conc"].items()]
    panel = read_panel(pd.DataFrame(rows), units=["id"], time="Time")
    resolved, data = resolve(PK, pk_model, panel)
    assert [s.name for s in resolved.inputs.constants] == ["dose"]
    np.testing.assert_array_equal(data.constants[:, 0], units["dose"])
    outputs = Objective(resolved, data).outputs(units[["ka", "ke", "volume"]].to_numpy(),
                                                np.arange(4))
    np.testing.assert_allclose(outputs, data.obs_value, rtol=1e-12)


def test_the_models_own_initial_stocks_unless_initial_says_otherwise(pk_model):
    """Without [initial], data on a stock at the start is a target, not a start value."""
    frame = pd.DataFrame({"id": [1, 1, 1], "Time": [0.0, 1.0, 2.0], "Dose": 4.0,
                          "central": [0.5, 1.0, 1.2], "conc": [np.nan, 2.0, 2.4]})
    panel = read_panel(frame, units=["id"], time="Time")
    own = Problem(PK.parameters, inputs={"dose": "Dose"})
    resolved, data = resolve(own, pk_model, panel)
    assert resolved.stocks.slots == () and data.initial.shape == (1, 0)
    assert sorted(resolved.observations.names) == ["central", "conc"]
    assert data.n_obs.tolist() == [5]  # central at 0, 1, 2 and conc at 1, 2
    started = Problem(PK.parameters, initial_time=0, inputs={"dose": "Dose"})
    resolved, data = resolve(started, pk_model, panel)
    assert [s.name for s in resolved.stocks.slots] == ["central"]
    assert data.initial.tolist() == [[0.5]] and data.n_obs.tolist() == [4]


def test_target_times_restrict_the_observations(pk_model):
    frame, _ = irregular_panel(3, seed=4)
    first = frame.groupby("Subject").head(1).index
    frame.loc[first, "Time"] = 5.0  # one observation at 5 h in every unit
    frame = frame.sort_values(["Subject", "Time"])
    panel = read_panel(frame, units=["Subject"], time="Time")
    resolved, data = resolve(Problem(PK.parameters, [5.0], targets=["conc"],
                                     inputs={"dose": "Dose"}), pk_model, panel)
    assert (data.obs_time[data.obs_mask] == 5.0).all() and data.n_obs.tolist() == [1, 1, 1]


def test_a_time_series_input_per_unit_gives_what_pysd_gives_with_that_series(tmp_path):
    """A data column that varies over time replaces the model's constant `invest` by each
    unit's own series (linear between data times, held at the ends): the objective equals
    PySD runs given each unit's series as a pandas Series."""
    import pysd

    from sdfit.resolution import resolve

    shutil.copy(EXAMPLES / "capital.mdl", tmp_path / "capital.mdl")
    model = sdfit.load_model(tmp_path / "capital.mdl")
    rng = np.random.default_rng(5)
    years = np.arange(1935.0, 1955.0)
    reference = pysd.read_vensim(str(tmp_path / "capital.mdl"))
    rows, planted = [], []
    for unit in range(3):
        invest = rng.uniform(50, 500, len(years))
        params = {"efficiency": rng.uniform(0.2, 1), "depreciation rate": rng.uniform(0, 0.2)}
        run = reference.run(params={**params, "invest": pd.Series(invest, index=years)},
                            return_timestamps=years, return_columns=["capital"])
        reference.reload()
        planted.append(list(params.values()))
        rows += [{"firm": f"f{unit}", "year": t, "invest": i, "capital": c}
                 for t, i, c in zip(years, invest, run["capital"], strict=True)]
    panel = read_panel(pd.DataFrame(rows), units=["firm"], time="year")
    problem = Problem([Parameter("efficiency"), Parameter("depreciation rate")],
                      inputs={"invest": "invest"}, targets=["capital"])
    resolved, data = resolve(problem, model, panel)
    assert [s.name for s in resolved.inputs.series] == ["invest"]
    assert resolved.inputs.kinds == ("time",) and data.series[0][0].shape == (3, 20)
    outputs = Objective(resolved, data).outputs(np.array(planted), np.arange(3))
    np.testing.assert_allclose(outputs, data.obs_value, rtol=1e-10)


def test_rk4_recovers_parameters_from_the_exact_solution(pk_model):
    """Data from the closed-form solution of the ODE (not from any discretisation): Euler
    is off by its step, RK4 recovers the planted parameters to 1e-6."""
    rng = np.random.default_rng(6)
    rows = []
    truth = pd.DataFrame({"ka": rng.uniform(0.8, 3, 5), "ke": rng.uniform(0.05, 0.2, 5),
                          "volume": rng.uniform(0.3, 0.7, 5), "dose": rng.uniform(3, 6, 5)})
    for u, (ka, ke, volume, dose) in truth.iterrows():
        times = np.sort(np.concatenate([rng.uniform(0.1, 2, 5), rng.uniform(2, 24, 5)]))
        times = np.round(times / DT) * DT  # on the grid
        conc = dose * ka / (volume * (ka - ke)) * (np.exp(-ke * times) - np.exp(-ka * times))
        rows += [{"id": u, "Time": t, "Dose": dose, "conc": c}
                 for t, c in zip(times, conc, strict=True)]
    panel = read_panel(pd.DataFrame(rows), units=["id"], time="Time")
    fits = {method: sdfit.fit(pk_model, panel, PK, backend="serial", progress=False,
                              method=method) for method in ("euler", "rk4")}
    assert fits["rk4"].run.problem["method"] == "rk4"
    planted = truth[["ka", "ke", "volume"]].to_numpy()
    np.testing.assert_allclose(fits["rk4"].table[["ka", "ke", "volume"]], planted, rtol=1e-6)
    euler = np.abs(fits["euler"].table[["ka", "ke", "volume"]].to_numpy() / planted - 1)
    assert euler.max() > 1e-4  # Euler's own error, which RK4 removes


def test_padding_reads_a_variable_beyond_the_last_target(census):
    """Padded slots read the panel's last row: its variable may be no target (dec_9 here,
    with dec_5 missing in one unit), which once failed with an IndexError."""
    spec = sdfit.load_spec("us-counties")
    model = sdfit.load_model(spec.model)
    panel = census
    value = panel.value.copy()
    value[9 + 4] = np.nan  # the first county's dec_5 in 2010
    panel = dataclasses.replace(panel, value=value)
    problem = dataclasses.replace(spec.problem, exclude=(*spec.problem.exclude, "dec 9"))
    resolved, data = resolve(problem, model, panel)
    assert data.n_obs[0] == 6 and (data.n_obs[1:] == 7).all()
    assert resolved.observations.data_names[-1] == "dec_8"
