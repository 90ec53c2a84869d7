"""Subscripts: arrays in the batched engine, and calibration of subscripted models.

References: PySD's own runtime on every subscripted model of the test-models suite
(variable by variable), and the scalar aging chain, which the subscripted one
(``population[cohort]``) must reproduce exactly, simulation and fit alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sdfit
from helpers import compare_suite_with_pysd
from sdfit.datasets import EXAMPLES, synthetic_panel
from sdfit.exceptions import ModelError, SpecError
from sdfit.model.runtime import arrays as V
from sdfit.model.runtime import functions as F
from sdfit.problem import Parameter, Problem
from sdfit.resolution import resolve
from sdfit.spec import find_spec, load_spec

COHORTS = [f"dec {k}" for k in range(1, 10)]
RATES = np.array([[0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09],
                  [0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]])
STOCKS = np.array([np.arange(1.0, 10.0) * 100, np.arange(9.0, 0.0, -1) * 150])


@pytest.fixture(scope="module")
def chain():
    return sdfit.load_model(EXAMPLES / "aging_chain_subscripted.mdl")


def test_subscripted_aging_chain_runs_exactly_as_the_scalar_one(chain, aging_chain):
    ours = chain.run(2, params={"loss rate": RATES}, initial={"population": STOCKS},
                     return_columns=["population"])
    scalar = aging_chain.run(
        2, params={f"{c} loss rate": RATES[:, k] for k, c in enumerate(COHORTS)},
        initial={c: STOCKS[:, k] for k, c in enumerate(COHORTS)}, return_columns=COHORTS)
    assert ours.values["population"].shape == (2, 81, 9)
    expected = np.stack([scalar.values[c] for c in COHORTS], axis=2)
    np.testing.assert_array_equal(ours.values["population"], expected)


def test_run_takes_elements_whole_arrays_and_records_elements(chain):
    base = chain.run(2, initial={"population": STOCKS[0]},
                     return_columns=["population[dec 3]"]).values["population[dec 3]"]
    one = chain.run(2, params={"loss rate[dec 3]": [0.05, 0.2]},
                    initial={f"population[{c}]": STOCKS[0, k] for k, c in enumerate(COHORTS)},
                    return_columns=["Population[DEC_3]"]).values["Population[DEC_3]"]
    assert base.shape == (2, 81)
    np.testing.assert_array_equal(one[0], base[0])  # 0.05 is the model's own rate
    assert one[1, -1] < base[1, -1]
    with pytest.raises(ModelError, match="every element of the stock 'population'"):
        chain.run(1, initial={"population[dec 1]": 5.0})
    with pytest.raises(ModelError, match="'dec 10' is not an element of 'cohort'.*'dec 1'"):
        chain.run(1, params={"loss rate[dec 10]": 0.1})
    assert chain.constant_value("loss rate[dec 4]") == 0.05
    frame = chain.run(2, return_columns=["population", "loss"]).to_frame(1)
    assert list(frame.columns[:2]) == ["population[dec 1]", "population[dec 2]"]
    assert frame.shape == (81, 18) and frame["loss[dec 9]"].iloc[0] == 50.0


def test_parameters_name_elements_or_whole_subscripted_constants(chain):
    panel, planted = synthetic_panel(
        chain, 4, {f"loss rate[{c}]": (0.01, 0.1) for c in COHORTS[1:]},
        {"population": (100.0, 5000.0)}, [2010], start_time=2000,
        variables=[f"population[{c}]" for c in COHORTS])
    problem = Problem([Parameter("loss rate", x0=0.05),
                       Parameter("loss rate[dec 1]", fixed=0.05)],
                      initial_time=2000, target_times=[2010], exclude=["population[dec 1]"])
    task, data = resolve(problem, chain, panel)
    assert task.parameters.names == [f"loss rate[{c}]" for c in COHORTS[1:]]
    assert len(task.stocks.slots) == 9 and data.initial.shape == (4, 9)
    assert task.observations.names == [f"population[{c}]" for c in COHORTS[1:]]
    result = sdfit.fit(chain, panel, problem, backend="serial", progress=False)
    np.testing.assert_allclose(result.table[task.parameters.names],
                               planted[task.parameters.names], atol=1e-7)
    with pytest.raises(SpecError, match="matched by both 'loss rate' and 'loss rat"):
        resolve(Problem([Parameter("loss rate"), Parameter("loss rate")], target_times=[2010]),
                chain, panel)


def test_aliases_map_data_names_onto_elements(chain):
    panel, _ = synthetic_panel(chain, 2, {}, {"population": (100.0, 5000.0)}, [2010],
                               start_time=2000, variables=[f"population[{c}]" for c in COHORTS])
    renamed = panel.frame.rename(columns=lambda v: v.replace("population[", "").rstrip("]")
                                 .replace(" ", "_") if isinstance(v, str) else v, level=1)
    census_like = sdfit.data.from_wide(renamed, "census-like", panel.lines)
    problem = Problem([Parameter("loss rate[dec 9]")], initial_time=2000, target_times=[2010],
                      aliases={"dec *": "population[dec *]"})
    task, data = resolve(problem, chain, census_like)
    assert task.observations.names == [f"population[{c}]" for c in COHORTS]
    np.testing.assert_array_equal(data.initial, np.column_stack(
        [panel.at(2000.0, panel.variable_index(f"population[{c}]"))[0] for c in COHORTS]))
    with pytest.raises(SpecError, match="4 of the 9 elements of the stock 'population'"):
        resolve(Problem([Parameter("loss rate[dec 9]")], initial_time=2000, target_times=[2010],
                        initial_stocks=[f"population[{c}]" for c in COHORTS[:4]],
                        aliases={"dec *": "population[dec *]"}), chain, census_like)
    with pytest.raises(SpecError, match="as many wildcards"):
        Problem([Parameter("x")], target_times=[1], aliases={"dec *": "population"})


@pytest.mark.slow
def test_us_counties_fit_gives_the_scalar_models_parameters(census):
    tables = {}
    for name in ("us-counties", "us-counties-subscripted"):
        spec = load_spec(find_spec(name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Kalawao's unidentifiable rate
            tables[name] = sdfit.fit(sdfit.load_model(spec.model), census, spec.problem,
                                     backend="serial", progress=False).table
    scalar, subscripted = tables["us-counties"], tables["us-counties-subscripted"]
    assert len(subscripted) == 3137 and subscripted["success"].all()
    for c in COHORTS[1:]:
        np.testing.assert_allclose(subscripted[f"loss rate[{c}]"], scalar[f"{c} loss rate"],
                                   rtol=0, atol=1e-8, err_msg=c)


@pytest.mark.slow
def test_every_subscripted_test_model_equals_pysd(test_models):
    """Every subscripted folder of the suite, variable by variable, against PySD itself
    (but GET TIME VALUE of other than the current time, which PySD lacks too)."""
    assert compare_suite_with_pysd(test_models, subscripted=True,
                                   skip=("get_time_value",)) == 75


ELM_MAP = """d: a, b, c
~~|
e: p, q
~~|
x[d] = 1, 2, 3
~~|
m[e, d] = 1, 2, 3; 4, 5, 6;
~~|
off[d] = 1, 1, -2
~~|
from first[d] = VECTOR ELM MAP(x[a], off[d])
~~|
from each[d] = VECTOR ELM MAP(x[d], off[d])
~~|
across rows[e] = VECTOR ELM MAP(m[e, b], 2)
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 1
~~|
TIME STEP = 1
~~|
SAVEPER = TIME STEP
~~|
"""


def test_vector_elm_map_counts_offsets_over_the_vectors_elements(tmp_path):
    """Vensim's VECTOR ELM MAP (PySD has none): positions run row-major over all ranges,
    NaN (Vensim's :NA:) beyond the vector."""
    path = tmp_path / "elm.mdl"
    path.write_text(ELM_MAP)
    sim = sdfit.load_model(path).run(2, params={"off": [[1, 1, -2], [0, 2, 0]]})
    first, each, rows = (sim.values[n][:, 0] for n in ("from first", "from each",
                                                        "across rows"))
    np.testing.assert_array_equal(first, [[2, 2, np.nan], [1, 3, 1]])
    np.testing.assert_array_equal(each, [[2, 3, 1], [1, np.nan, 3]])
    np.testing.assert_array_equal(rows, [[4, np.nan], [4, np.nan]])


def test_tables_per_element_look_up_as_one_table_each():
    xs = np.array([[0.0, 2.0, 5.0, np.inf], [1.0, 3.0, 4.0, 8.0]])
    ys = np.array([[1.0, 0.0, 4.0, 4.0], [2.0, 5.0, -1.0, 0.0]])
    x = np.array([[-1.0, 0.5], [1.0, 3.5], [4.9, 9.0]])  # three units, two elements
    for mode in ("interpolate", "extrapolate", "hold_backward"):
        ours = V.lookups(x, xs[None], ys[None], mode)
        for e, n in enumerate((3, 4)):
            np.testing.assert_allclose(ours[:, e], F.lookup(x[:, e], xs[e, :n], ys[e, :n], mode),
                                       rtol=1e-15, err_msg=mode)


def test_data_series_follow_pysds_interpolation_rules():
    times, values = np.array([0.0, 2.0, 5.0]), np.array([1.0, 3.0, -3.0])
    assert V.data(2.0, times, values, "raw") == 3.0 and np.isnan(V.data(1.0, times, values,
                                                                          "raw"))
    assert V.data(1.0, times, values, "interpolate") == 2.0
    assert V.data(3.0, times, values, "look_forward") == -3.0
    assert V.data(3.0, times, values, "hold_backward") == 3.0
    assert V.data(-1.0, times, values, "interpolate") == 1.0
    assert V.data(9.0, times, values, "interpolate") == -3.0
