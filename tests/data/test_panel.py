"""Taking values out of a panel: a table of values at one time, rows in order, padding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from sdfit.data import read_panel

# unit 2 first (as the file has it), its b at time 1 blank; unit 1 has a and b at 0, 1, 2
FRAME = pd.DataFrame({"id": [2, 1, 1, 2, 1], "t": [0.0, 1.0, 0.0, 1.0, 2.0],
                      "a": [5.0, 2.0, 1.0, 6.0, 3.0], "b": [7.0, 8.0, 9.0, np.nan, 4.0]})


def _panel():
    return read_panel(FRAME, units=["id"], time="t")


def test_table_at_is_at_per_variable_with_rows_and_a_repeated_variable():
    panel = _panel()
    a, b = panel.variable_index("a"), panel.variable_index("b")
    values, where = panel.table_at(0.0, [b, a, b])
    for column, variable in enumerate([b, a, b]):
        one, rows = panel.at(0.0, variable)
        np.testing.assert_array_equal(values[:, column], one)
        np.testing.assert_array_equal(where[:, column], rows)
    assert values.shape == (2, 3) and np.isfinite(values).all()
    assert (panel.value[where] == values).all()
    values, where = panel.table_at(2.0, [a, b])  # unit 2 has no row at time 2
    assert np.isnan(values[0]).all() and (where[0] == -1).all()
    assert values[1].tolist() == [3.0, 4.0]


def test_census_table_at_the_start_matches_the_file(census):
    values, where = census.table_at(2000.0, list(range(9)))
    frame = census.frame
    np.testing.assert_array_equal(values, frame[2000.0].to_numpy())
    assert (census.time[where] == 2000.0).all()


def test_observed_at_says_which_variables_have_a_row_at_a_time():
    panel = _panel()
    assert panel.observed_at(0.0).tolist() == [True, True]
    assert panel.observed_at(5.0).tolist() == [False, False]


def test_rows_of_sorts_rows_out_of_order_and_keeps_rows_in_order():
    panel = _panel()
    rows = panel.rows_of([0, 1])
    assert rows.tolist() == list(range(len(panel.value)))  # in order already: as they are
    order = np.array([8, 3, 0, 5, 1, 7, 2, 6, 4])  # a panel built in another order
    shuffled = dataclasses.replace(panel, unit=panel.unit[order], time=panel.time[order],
                                   variable=panel.variable[order], value=panel.value[order])
    rows = shuffled.rows_of([0, 1])
    np.testing.assert_array_equal(order[rows], np.arange(len(order)))
    at_one = shuffled.rows_of([1], times=[1.0, 0.0])
    assert shuffled.value[at_one].tolist() == [7.0, 9.0, 8.0]


def test_padded_ragged_and_regular_layouts():
    panel = _panel()
    layout, counts = panel.padded(panel.rows_of([0, 1]))
    assert counts.tolist() == [3, 6] and layout[0].tolist() == [0, 1, 2, -1, -1, -1]
    regular = panel.rows_of([0, 1], times=[0.0])  # a and b of both units at time 0
    layout, counts = panel.padded(regular)
    assert counts.tolist() == [2, 2] and layout.dtype == np.int64
    assert layout.tolist() == [[0, 1], [3, 4]]
