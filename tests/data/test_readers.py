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
    # compact: a byte per variable code, each observation's line its row's (none kept per
    # observation), yet hashed as ever (run fingerprints of earlier folders still match)
    assert census.variable.dtype == np.int8 and census.obs_lines is None
    assert census.obs_line(9 * 2 * 5 + 3) == census.lines[5]
    assert census.content_hash() == census.take(np.arange(len(census))).content_hash()


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


THEOPH_LIKE = """Subject,Wt,Dose,Time,conc
1,79.6,4.02,0,0.74
1,79.6,4.02,0.25,2.84
1,79.6,4.02,1.12,
2,72.4,4.4,0,0
2,72.4,4.4,0.27,1.72
2,72.4,4.4,0.52,oops
"""


def test_tidy_csv_one_row_per_unit_and_time(tmp_path):
    path = tmp_path / "theoph.csv"
    path.write_text(THEOPH_LIKE)
    panel = read_panel(path, units=["Subject"], time="Time")
    assert panel.unit_columns == ["Subject"] and list(panel.units) == [1, 2]
    assert panel.variables == ("Wt", "Dose", "conc")
    # the blank cell is not observed; text is kept for a message if a problem needs it
    conc = panel.rows_of([panel.variable_index("conc")])
    assert panel.time[conc].tolist() == [0, 0.25, 0, 0.27, 0.52]
    assert panel.non_numeric == {(7, 0.52, "conc"): "oops"}
    assert panel.lines.tolist() == [2, 5]
    layout, counts = panel.padded(conc)
    assert counts.tolist() == [2, 3] and layout[0, 2] == -1


@pytest.mark.parametrize("kind", ["frame", "parquet"])
def test_tidy_data_from_a_dataframe_or_parquet_equals_csv(tmp_path, kind):
    (tmp_path / "t.csv").write_text(THEOPH_LIKE)
    csv = read_panel(tmp_path / "t.csv", units="Subject", time="Time")
    frame = pd.read_csv(tmp_path / "t.csv")
    if kind == "parquet":
        pytest.importorskip("pyarrow")
        frame.to_parquet(tmp_path / "t.parquet")
        other = read_panel(tmp_path / "t.parquet", units=["Subject"], time="Time")
    else:
        other = read_panel(frame, units=["Subject"], time="Time")
    finite = ~np.isnan(csv.value)
    assert np.array_equal(csv.value[finite], other.value[~np.isnan(other.value)])
    assert list(other.units) == [1, 2]


@pytest.mark.parametrize("content, kwargs, message", [
    (THEOPH_LIKE, {"units": ["Subj"], "time": "Time"}, "no column 'Subj'. Did you mean "
     "'Subject'"),
    (THEOPH_LIKE, {"units": ["Subject"]}, "needs both 'units'"),
    ("id,t,x\n1,0,1\n1,0,2\n", {"units": ["id"], "time": "t"}, "lines 2 and 3: unit id=1 has "
     "two rows at time 0"),
    ("id,t,x\n1,zero,1\n", {"units": ["id"], "time": "t"}, "line 2, column 't': 'zero' is "
     "not a time"),
    ("state,t,x\n1,0,2\n2,0,3\n3,0,4\nTotal,0,9\n", {"units": ["state"], "time": "t"},
     "line 5: the unit id 'Total' in column 'state' is text while the others are numbers"),
    (",2000,2000\n,a,b\nunit,,\n", {}, "has header rows but no unit"),
])
def test_malformed_tidy_files_name_the_place(tmp_path, content, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_panel(path, **kwargs)


def test_a_latin_1_file_is_read(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("id,t,größe\n1,0,1.5\n".encode("latin-1"))
    panel = read_panel(path, units=["id"], time="t")
    assert panel.variables == ("größe",) and panel.value.tolist() == [1.5]


def test_a_wide_dataframe_needs_read_panel():
    with pytest.raises(DataError, match=r"pass read_panel\(frame, units=\[...\], time='...'\)"):
        read_panel(pd.DataFrame({"a": [1.0]}))
