"""Problem specs: the TOML contract, validation against model and data, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdfit import SpecError
from sdfit.datasets import aging_chain_path
from sdfit.objective import Objective
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.spec import load_spec, spec_from_dict

RECIPE = """
model = "Aging_Chain.mdl"
data = "Males by decade and county.csv"
[initial]
time = 2000                        # stocks start from the data at this time
[targets]
times = [2010]
exclude = ["dec 1"]                # variables present in the data but not fitted
[parameters]
"dec * loss rate" = { x0 = 0.05 }  # per entry also: bounds = [lo, hi], fixed = value
"""


def test_the_issue_toml_contract_is_accepted(tmp_path):
    (tmp_path / "spec.toml").write_text(RECIPE)
    spec = load_spec(tmp_path / "spec.toml")
    assert spec.model == tmp_path / "Aging_Chain.mdl"
    assert spec.problem.initial_time == 2000
    assert spec.problem.target_times == (2010.0,)
    assert spec.data.path == tmp_path / "Males by decade and county.csv"
    assert spec.problem.exclude == ("dec 1",)
    assert spec.problem.parameters == (Parameter("dec * loss rate", x0=0.05),)


def test_resolution_against_model_and_census(aging_chain, census):
    spec = spec_from_dict({"initial": {"time": 2000}, "targets": {"times": [2010],
                           "exclude": ["dec 1"]},
                           "parameters": {"dec * loss rate": {"x0": 0.05}}})
    task, data = resolve(spec.problem, aging_chain, census)
    assert task.parameters.names == [f"dec {k} loss rate" for k in range(1, 10)]
    assert [s.name for s in task.stocks.slots] == [f"dec {k}" for k in range(1, 10)]
    assert task.observations.names == [f"dec {k}" for k in range(2, 10)]
    assert data.initial.shape == (3137, 9) and data.obs_value.shape == (3137, 8)
    assert (data.obs_time == 2010).all() and data.obs_mask.all()
    assert data.obs_value[0, 0] == census.at(2010.0, census.variable_index("dec_2"))[0][0]
    np.testing.assert_array_equal(task.parameters.x0, 0.05)


def test_exact_name_takes_precedence_over_glob_and_fixed_is_not_fitted(aging_chain, census):
    problem = Problem([Parameter("dec * loss rate", x0=0.1),
                       Parameter("dec 1 loss rate", fixed=0.02),
                       Parameter("dec 9 loss rate", x0=0.2, bounds=(0, 1))],
                      target_times=[2010], exclude=["dec 1"])
    task, _ = resolve(problem, aging_chain, census)
    params = task.parameters
    assert params.names[0] == "dec 2 loss rate" and len(params) == 8
    assert [(s.ident, v) for s, v in params.fixed] == [("v_dec_1_loss_rate", 0.02)]
    assert params.x0[-1] == 0.2 and params.lower[-1] == 0 and params.upper[0] == math.inf


@pytest.mark.parametrize("raw, message", [
    ({"paramters": {}}, "unknown key 'paramters'. Did you mean 'parameters'"),
    ({"targets": {"time": [2010]}}, r"unknown key 'time' in \[targets\]. Did you mean 'times'"),
    ({"targets": {"times": [2010]}, "parameters": {"x": {"x0": 1, "bound": [0, 1]}}},
     "unknown key 'bound'. Did you mean 'bounds'"),
    ({"targets": {"times": ["2010"]}, "parameters": {"x": {}}},
     r"'times' setting of \[targets\] must be a number or a list of numbers; got \['2010'\]"),
    ({"targets": {"times": [2010]}, "parameters": {"x": {"bounds": [1, 0]}}},
     "lower 1 > upper 0"),
    ({"targets": {"times": [2010]}, "parameters": {"x": {"x0": 5, "bounds": [0, 1]}}},
     "x0 = 5 of parameter 'x' lies outside its bounds"),
    ({"fit": {"drop_invalid": "false"}, "parameters": {"x": {}}},
     r"'drop_invalid' setting must be true or false; got 'false' \(a string\) "
     r"\(from \[fit\] drop_invalid\)"),
    ({"fit": {"workers": "two"}, "parameters": {"x": {}}}, "'workers' setting must be an integer"),
    ({"fit": {"chunk_size": 0}, "parameters": {"x": {}}}, "'chunk_size' setting must be an "
     "integer >= 1; got 0"),
    ({"solver": {"max_nfev": -5}, "parameters": {"x": {}}}, "'max_nfev' setting must be an "
     "integer >= 1"),
    ({"solver": {"max_nfev": 2.5}, "parameters": {"x": {}}}, "'max_nfev' setting must be an "
     "integer"),
    ({"solver": {"ftol": "tight"}, "parameters": {"x": {}}}, "'ftol' setting must be a number"),
    ({"parameters": {"x": {"x0": "0.05"}}}, r"'x0' setting must be a number; got '0.05' "
     r"\(a string\)"),
    ({"targets": {"likelihood": "gauss"}, "parameters": {"x": {}}},
     "Did you mean 'gaussian'"),
    ({"targets": {"times": [2010]}}, "names no parameter"),
])
def test_invalid_specs(raw, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(raw)


@pytest.mark.parametrize("problem, message", [
    (Problem([Parameter("dec * los rate")], [2010]), "Did you mean"),
    (Problem([Parameter("dec 1")], [2010]), "not a constant"),
    (Problem([Parameter("dec * loss rate")], [2010], exclude=["dec 11"]), "Excluded variable"),
    (Problem([Parameter("dec * loss rate")], [2010], targets=["dec 2 los"]), "Did you mean"),
    (Problem([Parameter("dec * loss rate")], [2010.1], initial_time=2000), "no time 2010.1"),
    (Problem([Parameter("dec * loss rate")], [2010], initial_time=2001), "no time 2001"),
    (Problem([Parameter("dec * loss rate")], [2010], initial_time=2000,
             initial_stocks=["births"]), "not a stock"),
    (Problem([Parameter("dec * loss rate", fixed=0.1)], [2010]), "nothing to fit"),
    (Problem([Parameter("dec 1 *"), Parameter("dec 1 loss*")], [2010]), "matched by both"),
])
def test_problems_that_do_not_fit_the_model_or_data(aging_chain, census, problem, message):
    from sdfit import DataError

    with pytest.raises((SpecError, DataError), match=message):
        resolve(problem, aging_chain, census)


def test_initial_time_off_the_time_step_grid(census, tmp_path):
    import sdfit

    path = tmp_path / "coarse.mdl"
    path.write_text(aging_chain_path().read_text().replace("0.125", "3"))
    model = sdfit.load_model(path)
    with pytest.raises(SpecError, match="not on the model's TIME STEP grid"):
        resolve(Problem([Parameter("dec * loss rate")], [2010], initial_time=2001), model,
                census)


def test_bundled_example_spec_loads(shared_data):
    spec = load_spec("us-counties")
    assert spec.model == aging_chain_path()


def test_ridge_and_shared_entries(aging_chain, census):
    spec = spec_from_dict({"targets": {"times": [2010], "exclude": ["dec 1"]},
                           "initial": {"time": 2000},
                           "parameters": {"dec * loss rate": {"x0": 0.05},
                                          "dec 1 loss rate": {"x0": 0.04, "ridge": 100},
                                          "dec 9 loss rate": {"shared": True}}})
    task, data = resolve(spec.problem, aging_chain, census)
    assert task.parameters.ridge.tolist() == [100.0] + [0.0] * 8
    assert task.parameters.shared.tolist() == [False] * 8 + [True]
    assert task.parameters.penalised.tolist() == [0]
    x = np.full((2, 9), 0.06)
    r = Objective(task, data).residuals(x, np.array([0, 1]))
    assert r.shape == (2, 9)
    np.testing.assert_allclose(r[:, -1], 10 * (0.06 - 0.04))


@pytest.mark.parametrize("entry, message", [
    ({"ridge": -1}, "'ridge' setting must be a number >= 0"),
    ({"ridge": "big"}, "must be a number"),
    ({"shared": "yes"}, "must be true or false"),
    ({"fixed": 0.1, "ridge": 1}, "is fixed, so 'ridge' has no effect"),
    ({"shared": True, "ridge": 1}, "not supported"),
    ({"shard": True}, "Did you mean 'shared'"),
])
def test_invalid_ridge_and_shared_entries(entry, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({"targets": {"times": [2010]}, "parameters": {"x": entry}})


def test_bundled_examples_pose_the_recipe_and_its_well_posed_form(shared_data):
    recipe, posed = load_spec("us-counties-recipe"), load_spec("us-counties")
    assert recipe.problem.parameters == (Parameter("dec * loss rate", x0=0.05),)
    assert Parameter("dec 1 loss rate", fixed=0.05) in posed.problem.parameters


def test_tidy_data_inputs_likelihood_and_starts_in_a_spec(tmp_path):
    spec = spec_from_dict({
        "model": "pk.mdl",
        "data": {"path": "theoph.csv", "units": ["Subject"], "time": "Time"},
        "inputs": {"dose": "Dose"},
        "targets": {"variables": ["conc"], "likelihood": "lognormal"},
        "parameters": {"ka": {"x0": 1.5, "bounds": [0, 20], "scale": 1.0}},
        "fit": {"starts": 8, "seed": 3, "method": "rk4", "max_steps": 1e9}}, base=tmp_path)
    assert spec.data.path == tmp_path / "theoph.csv"
    assert spec.data.units == ("Subject",) and spec.data.time == "Time"
    problem = spec.problem
    assert problem.inputs == {"dose": "Dose"} and problem.likelihood == "lognormal"
    assert problem.starts == 8 and problem.seed == 3 and problem.target_times is None
    assert problem.initial_time is None  # the model's own initial stocks
    assert spec.fit == {"method": "rk4", "max_steps": 1e9}


@pytest.mark.parametrize("data, message", [
    ({"path": "x.csv", "units": ["id"]}, "needs both 'units'"),
    ({"units": ["id"], "time": "t"}, "data needs a path"),
    ({"path": "x.csv", "unit": ["id"], "time": "t"}, "unknown key 'unit' in data. Did you "
     "mean 'units'"),
    ({"path": "x.csv", "units": [], "time": "t"}, "must name the unit id columns"),
])
def test_invalid_data_tables(data, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({"data": data, "parameters": {"x": {}}})
