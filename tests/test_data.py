"""Reading panels: the census wide layout, long CSV, Parquet, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sdfit import DataError
from sdfit.data import from_wide, read_panel


def test_census_file_reads_as_3137_counties(census):
    assert len(census) == 3137
    assert census.unit_columns == ["state", "county"]
    assert census.times == [2000.0, 2010.0]
    assert census.variables == tuple(f"dec_{k}" for k in range(1, 10))
    # first county of the file: Autauga, Alabama
    assert census.at(2000.0, 0)[0][0] == 3375.0 and census.at(2010.0, 8)[0][0] == 454.0
    assert census.lines[0] == 4  # two header rows and the id-names row


def test_census_agrees_with_the_documented_pandas_reading(census, census_path):
    expected = pd.read_csv(census_path, header=[0, 1], index_col=[0, 1])
    np.testing.assert_array_equal(census.frame.to_numpy(), expected.to_numpy())


@pytest.fixture
def small():
    frame = pd.DataFrame(
        [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]],
        index=pd.MultiIndex.from_tuples([(1, 10), (2, 20)], names=["state", "county"]),
        columns=pd.MultiIndex.from_tuples(
            [(2000.0, "a"), (2000.0, "b"), (2010.0, "a"), (2010.0, "b")],
            names=["time", "variable"]))
    return from_wide(frame, "<small>")


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_round_trip_through_csv(small, tmp_path, layout):
    path = small.to_csv(tmp_path / f"p_{layout}.csv", layout)
    again = read_panel(path)
    assert again.unit_columns == ["state", "county"]
    np.testing.assert_array_equal(again.frame.to_numpy(), small.frame.to_numpy())
    assert list(again.frame.columns) == list(small.frame.columns)


def test_long_parquet(small, tmp_path):
    pytest.importorskip("pyarrow")
    small.to_long().to_parquet(tmp_path / "p.parquet")
    again = read_panel(tmp_path / "p.parquet")
    np.testing.assert_array_equal(again.frame.to_numpy(), small.frame.to_numpy())


def test_variable_and_time_lookup_with_suggestions(small):
    assert small.variable_name("A") == "a"
    with pytest.raises(DataError, match="no variable 'aa'"):
        small.variable_name("aa")
    with pytest.raises(DataError, match=r"no time 2005 \(it has 2000, 2010\)"):
        small.check_time(2005)


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("a,b\n1,2\n", "neither wide"),
    (",2000,2000\n,a,b\nunit,,\n1,1,2\n1,3,4\n", "duplicate unit ids: unit=1 on lines 4 and 5"),
    ("id,time,variable,value\n1,2000,a,1\n1,2000,a,2\n", "line 2: the observation of 'a'"),
    ("id,time,variable,value\n1,oops,a,1\n", "line 2, column 'time': 'oops' is not a time"),
    ("id,time,variable\n1,2000,a\n", "neither wide"),
])
def test_malformed_files_name_the_place(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_panel(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_panel(tmp_path / "none.csv")


def test_missing_cells_are_nan_not_errors(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text(",2000,2000\n,a,b\nunit,,\n1,1,\n2,NA,4\n")
    panel = read_panel(path)
    assert np.isnan(panel.frame.to_numpy()).sum() == 2


@pytest.mark.parametrize("content", [
    ",2000,2000,2010\n,a,b,a\nunit,,,\n1,1,2,3\n2,x,4,5\n",
    "id,time,variable,value\n1,2000,a,1\n1,2000,b,2\n1,2010,a,3\n"
    "2,2000,a,x\n2,2000,b,4\n2,2010,a,5\n",
])
def test_non_numeric_cells_are_nan_with_their_text_kept_for_messages(tmp_path, content):
    """Text where a number belongs is refused only if a problem needs that cell (by fit),
    so the panel keeps it, keyed by the unit's line, the time and the variable."""
    path = tmp_path / "text.csv"
    path.write_text(content)
    panel = read_panel(path)
    assert np.isnan(panel.frame.iloc[1, 0]) and np.isnan(panel.frame.to_numpy()).sum() == 1
    line = int(panel.lines[1])
    assert panel.non_numeric == {(line, 2000.0, "a"): "x"}
    assert line == 5  # wide: the line of its row; long: the line of its first observation
    assert panel.take([1]).non_numeric == panel.non_numeric
