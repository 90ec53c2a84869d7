"""fit(): backends agree, results are complete, invalid units are refused or dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sdfit import DataError
from sdfit.calibrate import MAX_CHUNK, fit, plan_chunks
from sdfit.data import from_wide
from sdfit.problem import Parameter, Problem
from sdfit.results import FitResult

# the recipe's problem is under-determined: its identifiability warning is tested elsewhere
pytestmark = pytest.mark.filterwarnings("ignore::sdfit.IdentifiabilityWarning")

RECIPE = Problem([Parameter("dec * loss rate", x0=0.05)], target_times=[2010],
                 initial_time=2000, exclude=["dec 1"])


@pytest.fixture(scope="module")
def subset(census):
    return census.head(60)


def test_serial_and_processes_give_identical_tables(aging_chain, subset):
    serial = fit(aging_chain, subset, RECIPE, backend="serial", progress=False)
    pooled = fit(aging_chain, subset, RECIPE, backend="processes", workers=2, chunk_size=7,
                 progress=False)
    pd.testing.assert_frame_equal(serial.table, pooled.table)
    assert pooled.run.chunks == 9


def test_result_table_columns_and_targets(aging_chain, subset):
    result = fit(aging_chain, subset, RECIPE, backend="serial", progress=False)
    params = [f"dec {k} loss rate" for k in range(1, 10)]
    core = ["state", "county", *params, "sse", "success", "status", "message", "nfev"]
    assert list(result.table.columns[:len(core)]) == core
    likelihood = ["n_obs", "objective", "nll", "aic", "bic"]
    assert list(result.table.columns[len(core):len(core) + 5]) == likelihood
    core += likelihood
    assert list(result.table.columns[len(core):len(core) + 7]) == [
        "rank", "condition", "dec 1 loss rate_identifiable", "dec 1 loss rate_nullspace",
        "dec 1 loss rate_stderr", "dec 1 loss rate_ci_low", "dec 1 loss rate_ci_high"]
    assert result.unit_columns == ["state", "county"]
    assert result.table["success"].all() and (result.table["sse"] < 1e-3).all()
    assert len(result.targets) == 60 * 8
    np.testing.assert_allclose(result.targets["fitted"], result.targets["observed"], atol=0.05)


def test_written_tables_round_trip_exactly(aging_chain, subset, tmp_path):
    result = fit(aging_chain, subset, RECIPE, backend="serial", progress=False)
    result.write(tmp_path)
    again = FitResult.read(tmp_path)  # message and variable categorical again, as written
    pd.testing.assert_frame_equal(again.table, result.table)
    # whole times are read back as integers
    pd.testing.assert_frame_equal(again.targets, result.targets, check_dtype=False)
    assert again.targets["variable"].dtype == result.targets["variable"].dtype
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_invalid_units_are_refused_with_their_lines_or_dropped(aging_chain, subset):
    frame = subset.frame.copy()
    frame.iloc[3, 4] = np.nan
    frame.iloc[5, 12] = np.inf
    broken = from_wide(frame, "broken.csv", subset.lines)
    with pytest.raises(DataError, match=r"2 unit\(s\).*: line 7 \(state=1, county=7\): missing "
                       r"value in column 'dec_5' at time 2000; line 9 \(state=1, county=11\): "
                       r"infinite value in column 'dec_4' at time 2010; fix them"):
        fit(aging_chain, broken, RECIPE, backend="serial", progress=False)
    result = fit(aging_chain, broken, RECIPE, backend="serial", progress=False,
                 drop_invalid=True)
    assert len(result.table) == 58
    assert result.dropped["reason"].tolist() == ["missing value in column 'dec_5' at time 2000",
                                                 "infinite value in column 'dec_4' at time 2010"]
    assert result.dropped["line"].tolist() == [7, 9]
    assert "Dropped 2 units" in result.summary()


def test_chunk_plan_covers_every_unit_once():
    chunks = plan_chunks(1001, None, 2)
    assert np.array_equal(np.concatenate(chunks), np.arange(1001))
    assert [len(c) for c in chunks] == [501, 500]  # one equal chunk per worker
    assert len(plan_chunks(3 * MAX_CHUNK, None, 2)) == 4  # none above MAX_CHUNK, even per worker
    assert len(plan_chunks(10, 3, 2)) == 4


def test_negative_observations_are_refused_only_by_likelihoods_that_cannot_take_them(
        aging_chain, subset):
    frame = subset.frame.copy()
    frame.iloc[5, 12] = -1.0
    negative = from_wide(frame, "negative.csv", subset.lines)
    counts = Problem(RECIPE.parameters, [2010], initial_time=2000, exclude=["dec 1"],
                     likelihood="poisson")
    with pytest.raises(DataError, match=r"line 9 \(state=1, county=11\): negative value -1 "
                       r"\(a count\) in column 'dec_4' at time 2010"):
        fit(aging_chain, negative, counts, backend="serial", progress=False)
    result = fit(aging_chain, negative.head(8), RECIPE, backend="serial", progress=False)
    assert len(result.table) == 8  # a gaussian observation may be negative: no unit refused


def test_a_huge_value_fails_its_unit_quietly(aging_chain, subset):
    """A value of 1e308 overflows its residual: that unit is a failed row, with no NumPy
    warning and no 'nan' in the summary."""
    import warnings

    frame = subset.frame.copy()
    frame.iloc[2, 12] = 1e308
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(aging_chain, from_wide(frame, "huge.csv"), RECIPE, backend="serial",
                     progress=False)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert result.table["success"].tolist().count(False) == 1
    assert not result.table.loc[2, "success"] and "nan" not in result.summary()
    assert "(1 units without)" in result.summary()
