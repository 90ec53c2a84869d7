"""Per-unit tables (``inputs``): a constant, a data variable or a lookup replaced by one
piecewise-linear table per unit, in both engines."""

from __future__ import annotations

import numpy as np
import pytest

import sdfit
from sdfit import DataError, ModelError
from sdfit.model import PysdModel
from sdfit.model.runtime.inputs import UnitTable

MODEL = """{UTF-8}
contact rate = 2
~~|
effect((0,0),(10,10))
~~|
infected = INTEG(contact rate + effect(Time * 2), 0)
~~|
seen = effect(Time * 2)
~~|
INITIAL TIME = 0
~~|
FINAL TIME = 5
~~|
TIME STEP = 0.25
~~|
SAVEPER = 0.5
~~|
"""

X = np.array([[1.0, 2.0, 4.0, np.nan], [0.0, 0.5, 3.0, 5.0], [2.5, np.nan, np.nan, np.nan]])
Y = np.array([[1.0, 5.0, 3.0, np.nan], [2.0, 7.0, -1.0, 0.0], [4.0, np.nan, np.nan, np.nan]])


def _interp(at, x, y):
    return np.interp(at, x[~np.isnan(x)], y[~np.isnan(y)])


def test_each_row_interpolates_like_numpy_and_holds_its_ends():
    table = UnitTable(X, Y)
    for at in (-1.0, 0.0, 0.7, 2.0, 2.5, 3.9, 4.0, 6.0):
        expected = [_interp(at, x, y) for x, y in zip(X, Y, strict=True)]
        np.testing.assert_allclose(table(at), expected, rtol=1e-15)
    at = np.array([0.3, 4.5, 9.0])  # one time per row
    expected = [_interp(a, x, y) for a, x, y in zip(at, X, Y, strict=True)]
    np.testing.assert_allclose(table(at), expected, rtol=1e-15)
    np.testing.assert_array_equal(table.take([2, 0])(3.0), table(3.0)[[2, 0]])
    shared = UnitTable(X[1:2], Y[1:2])  # one table for every row
    np.testing.assert_array_equal(shared(np.array([0.25, 4.0])), [4.5, -0.5])


def test_malformed_tables_are_refused_in_one_sentence():
    with pytest.raises(DataError, match="same shape"):
        UnitTable(X, Y[:, :2])
    with pytest.raises(DataError, match="sorted"):
        UnitTable([[2.0, 1.0]], [[0.0, 0.0]])
    with pytest.raises(DataError, match="after its NaN padding"):
        UnitTable([[np.nan, 1.0]], [[np.nan, 0.0]])


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "epidemic.mdl"
    path.write_text(MODEL)
    return sdfit.load_model(path), PysdModel.load(path)


def test_a_constant_and_a_lookup_replaced_per_unit_equal_pysd_with_series(engines):
    """PySD reads a pandas Series given for a constant in time, and uses one given for a
    lookup as the table: the per-unit tables must give exactly its numbers."""
    batched, by_pysd = engines
    ident = {v.name: v.ident for v in batched.variables.values()}
    inputs = {ident["contact rate"]: UnitTable(X, Y),
              ident["effect"]: UnitTable(X[[1, 0, 2]] * 2, Y[[1, 0, 2]] * 3 - 1)}
    record = (ident["infected"], ident["seen"], ident["contact rate"])
    times, ours = batched.execute(3, {}, record, inputs=inputs)
    pysd_times, theirs = by_pysd.execute(3, {}, record, inputs=inputs)
    np.testing.assert_array_equal(times, pysd_times)
    for name, a, b in zip(("infected", "seen", "contact rate"), ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0, err_msg=name)
    assert len({tuple(row) for row in ours[0]}) == 3  # every unit its own path


def test_run_takes_tables_by_name_and_refuses_what_they_cannot_replace(engines):
    batched, _ = engines
    sim = batched.run(3, inputs={"Contact Rate": UnitTable(X, Y)},
                      return_columns=["contact rate"])
    np.testing.assert_allclose(sim.values["contact rate"], np.stack(
        [UnitTable(X, Y)(t) for t in sim.times], axis=1))
    with pytest.raises(ModelError, match="'infected' in model 'epidemic' is not one"):
        batched.run(1, inputs={"infected": UnitTable(X[:1], Y[:1])})
    with pytest.raises(ModelError, match="has no input named 'contact rat'"):
        batched.run(1, inputs={"contact rat": UnitTable(X[:1], Y[:1])})
