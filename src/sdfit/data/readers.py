"""Reading panels from CSV, Parquet or a pandas DataFrame.

Three layouts:

* **tidy** (the most common in pandas and R): one row per unit and time, one column per
  variable; the caller names the unit id columns and the time column
  (``read_panel(path, units=["Subject"], time="Time")``).  A blank cell is not observed.
* **wide** (the census file): two header rows, the first naming the time and the second
  the variable of each column; the leading columns whose time cell is empty hold the unit
  ids, optionally named by a third row.
* **long**: one row per observation with columns ``time``, ``variable``, ``value`` and any
  other columns as unit ids.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..names import canonical, did_you_mean
from .panel import Panel, code_dtype

LONG_COLUMNS = ("time", "variable", "value")
MISSING_MARKS = ["nan", "na", "n/a"]
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Bytes of a data file checked at once for UTF-8.
ENCODING_BLOCK = 1 << 24


def read_panel(data: str | Path | pd.DataFrame, units: Sequence[str] | str | None = None,
               time: str | None = None) -> Panel:
    """Read a panel from a file (CSV or Parquet) or a DataFrame.

    Parameters
    ----------
    data
        A path, or a DataFrame (tidy with ``units`` and ``time``, or long).
    units, time
        For tidy data: the unit id column(s) and the time column.  Without them a file is
        read as wide or long, whichever its header says.

    Raises
    ------
    DataError
        Missing, empty or malformed data, naming the file, line and column at fault.
    """
    if (units is None) != (time is None):
        raise DataError("Tidy data needs both 'units' (the unit id columns) and 'time' (the "
                        "time column).")
    if isinstance(data, pd.DataFrame):
        source = "<DataFrame>"
        if units is not None:
            return from_tidy(data, _names(units), time, source)
        if {canonical(c) for c in data.columns} >= set(LONG_COLUMNS):
            return from_long(data, source)
        raise DataError("A DataFrame is read as long data (columns time, variable, value and "
                        "unit ids) or as tidy data: pass read_panel(frame, units=[...], "
                        "time='...').")
    if not isinstance(data, str | Path):
        raise DataError(f"Data must be a path, a DataFrame or a Panel; got "
                        f"{type(data).__name__}.")
    path = Path(data)
    if str(data).strip() == "" or not path.is_file():
        raise DataError(f"Data file '{path}' does not exist.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file '{path}' is empty.")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
        if units is not None:
            return from_tidy(frame, _names(units), time, str(path))
        if isinstance(frame.columns, pd.MultiIndex):  # a wide frame written by pandas
            return from_wide(frame, str(path))
        return from_long(frame, str(path))
    # pandas reads the file itself: an io.StringIO of its text would hold 4 bytes a
    # character (1.4 GB for a million units of 18 columns)
    encoding = _encoding(path)
    if units is not None:
        return from_tidy(_read_csv(path, encoding), _names(units), time, str(path))
    with path.open(encoding=encoding, newline="") as handle:
        head = [row for _, row in zip(range(3), csv.reader(handle), strict=False)]
    if not head or not any(cell.strip() for cell in head[0]):
        raise DataError(f"Data file '{path}' is empty.")
    if {canonical(c) for c in head[0]} >= set(LONG_COLUMNS):
        return from_long(_read_csv(path, encoding), str(path))
    return _read_wide(path, encoding, head)


# -- tidy -------------------------------------------------------------------------------------
def from_tidy(frame: pd.DataFrame, units: list[str], time: str, source: str) -> Panel:
    """A panel from a tidy table: ``units`` columns, a ``time`` column, one column per
    variable.  Lines in messages count a header line first."""
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    for name in [*units, time]:
        if name not in columns:
            raise DataError(f"Data file '{source}' has no column '{name}'."
                            f"{did_you_mean(name, columns)}")
    variables = [c for c in columns if c not in (*units, time)]
    if not variables:
        raise DataError(f"Data file '{source}' has no variable column besides the unit ids "
                        f"and '{time}'.")
    ids = _unit_ids(frame[units], source, first_line=2)
    times = _times(frame[time], source, time, first_line=2)
    index = pd.MultiIndex.from_frame(ids) if len(units) > 1 else pd.Index(ids[units[0]],
                                                                           name=units[0])
    codes, uniques = pd.factorize(index)
    uniques = uniques.set_names(index.names)
    n_rows, n_vars = len(frame), len(variables)
    values = np.empty((n_rows, n_vars))
    text = np.zeros((n_rows, n_vars), dtype=bool)
    notes = {}
    for j, name in enumerate(variables):
        values[:, j], text[:, j] = _numbers(frame[name])
        for row in np.flatnonzero(text[:, j]):
            notes[(row + 2, float(times[row]), name)] = str(frame[name].iloc[row]).strip()
    # a blank cell is not observed; text stays, so that a problem needing it says so
    observed = ~np.isnan(values) | text
    row, var = np.nonzero(observed)
    lines = row + 2
    keys = pd.DataFrame({"u": codes, "t": times})
    dup = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
    if len(dup):
        same = dup[(keys.iloc[dup] == keys.iloc[dup[0]]).all(axis=1).to_numpy()]
        first, second = same[:2]
        raise DataError(f"Data file '{source}', lines {first + 2} and {second + 2}: unit "
                        f"{_describe(uniques, codes[first])} has two rows at time "
                        f"{times[first]:g}.")
    unit_lines = np.full(len(uniques), np.iinfo(np.int64).max)
    np.minimum.at(unit_lines, codes, np.arange(n_rows) + 2)
    panel = _panel(uniques, variables, codes[row], times[row], var, values[row, var], lines,
                   unit_lines, source, notes)
    return dataclasses.replace(panel, layout={"units": list(units), "time": time})


# -- long -------------------------------------------------------------------------------------
def from_long(frame: pd.DataFrame, source: str = "<data>") -> Panel:
    """A panel from a long table with columns ``time, variable, value`` and one or more
    unit id columns."""
    by_key = {canonical(c): c for c in frame.columns}
    missing = [c for c in LONG_COLUMNS if c not in by_key]
    if missing:
        raise DataError(f"Data file '{source}' lacks the column(s) {', '.join(missing)} of a "
                        "long table.")
    time, variable, value = (by_key[c] for c in LONG_COLUMNS)
    id_columns = [c for c in frame.columns if c not in (time, variable, value)]
    if not id_columns:
        raise DataError(f"Data file '{source}' has no unit id column besides time, variable "
                        "and value.")
    numeric, bad = _numbers(frame[value])
    times = _times(frame[time], source, time, first_line=2)
    ids = _unit_ids(frame[id_columns], source, first_line=2)
    index = (pd.MultiIndex.from_frame(ids) if len(id_columns) > 1
             else pd.Index(ids[id_columns[0]], name=id_columns[0]))
    codes, uniques = pd.factorize(index)
    uniques = uniques.set_names(index.names)
    names = frame[variable].astype(str).to_numpy()
    var_codes, variables = pd.factorize(names)
    lines = np.arange(len(frame)) + 2
    dup = pd.DataFrame({"u": codes, "t": times, "v": var_codes}).duplicated(keep=False)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"Data file '{source}', line {row + 2}: the observation of "
                        f"'{names[row]}' at time {times[row]:g} for this unit appears twice.")
    text = frame[value].astype(str).str.strip().to_numpy()
    notes = {(int(lines[r]), float(times[r]), names[r]): text[r] for r in np.flatnonzero(bad)}
    unit_lines = np.full(len(uniques), np.iinfo(np.int64).max)
    np.minimum.at(unit_lines, codes, lines)
    return _panel(uniques, list(variables), codes, times, var_codes, numeric, lines,
                  unit_lines, source, notes)


# -- wide -------------------------------------------------------------------------------------
def _read_wide(path: Path, encoding: str, head: list[list[str]]) -> Panel:
    if len(head) < 3:
        raise DataError(
            f"Data file '{path}' is neither wide (a row of times, a row of variables, then "
            "one row per unit) nor long (columns time, variable, value and unit ids); for "
            "tidy data (one row per unit and time) say which columns hold the units and the "
            "time: data = {{ path = ..., units = [...], time = ... }}.")
    times_row, names_row = head[0], head[1]
    # unit id columns come first; their cell in the time row is empty or a label ("time")
    n_ids = next((i for i, c in enumerate(times_row) if _is_number(c)), len(times_row))
    if n_ids == 0 or n_ids == len(times_row):
        raise DataError(
            f"Data file '{path}' is neither wide (a row of times, a row of variables, then one "
            "row per unit, the leading columns holding unit ids) nor long (columns time, "
            "variable, value and unit ids); for tidy data (one row per unit and time) say "
            "which columns hold the units and the time: data = { path = ..., units = [...], "
            "time = ... }.")
    if len(names_row) != len(times_row):
        raise DataError(f"Data file '{path}': line 2 has {len(names_row)} cells but line 1 "
                        f"has {len(times_row)}.")
    has_id_names = all(c.strip() for c in head[2][:n_ids]) and not any(
        c.strip() for c in head[2][n_ids:])
    first_line = 4 if has_id_names else 3
    columns = []
    for j in range(n_ids, len(times_row)):
        time, name = times_row[j].strip(), names_row[j].strip()
        if not _is_number(time):
            raise DataError(f"Data file '{path}', line 1, column {j + 1}: '{time}' is not a "
                            "time.")
        if not name:
            raise DataError(f"Data file '{path}', line 2, column {j + 1}: the variable name "
                            "is empty.")
        columns.append((float(time), name))
    if len(set(columns)) < len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"Data file '{path}' has the column ({dup[0]:g}, {dup[1]}) twice.")
    # ids as text; values parsed as floats by the C parser (8 bytes a cell), a column
    # holding text comes back as strings and is looked at alone
    try:
        raw = pd.read_csv(path, encoding=encoding, header=None, skiprows=first_line - 1,
                          dtype={j: str for j in range(n_ids)}, keep_default_na=False,
                          na_values={j: [""] for j in range(n_ids, len(times_row))})
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file '{path}' has header rows but no unit.") from None
    except pd.errors.ParserError as error:
        raise DataError(f"Data file '{path}' could not be read: "
                        f"{' '.join(str(error).split())}") from None
    if raw.empty:
        raise DataError(f"Data file '{path}' has header rows but no unit.")
    if raw.shape[1] != len(times_row):
        raise DataError(f"Data file '{path}' has rows of {raw.shape[1]} cells but a header of "
                        f"{len(times_row)}.")
    id_names = [c.strip() for c in head[2][:n_ids]] if has_id_names else [
        c.strip() or f"unit_{i}" for i, c in enumerate(names_row[:n_ids])]
    values = np.empty((len(raw), len(columns)))
    notes = {}
    for col, (_, cells) in enumerate(raw.iloc[:, n_ids:].items()):
        if cells.dtype.kind in "iuf":  # all numbers (or blank)
            values[:, col] = cells.to_numpy()
            continue
        values[:, col], bad = _numbers(cells)
        notes.update({(first_line + row, *columns[col]): cells.iloc[row].strip()
                      for row in np.flatnonzero(bad)})
    ids = _unit_ids(raw.iloc[:, :n_ids].set_axis(id_names, axis=1), str(path), first_line)
    index = pd.MultiIndex.from_frame(ids) if n_ids > 1 else pd.Index(ids.iloc[:, 0],
                                                                      name=id_names[0])
    return _from_matrix(index, columns, values, np.arange(len(raw)) + first_line, str(path),
                        notes)


def from_wide(frame: pd.DataFrame, source: str = "<data>", lines=None) -> Panel:
    """A panel from a wide DataFrame: unit ids as the index, (time, variable) columns;
    ``lines`` numbers the units for messages (default 1, 2, ...)."""
    columns = [(float(t), str(v)) for t, v in frame.columns]
    lines = np.arange(len(frame)) + 1 if lines is None else np.asarray(lines)
    # a copy: the panel must not change when the caller later changes its frame
    return _from_matrix(frame.index, columns, frame.to_numpy(dtype=float, copy=True), lines,
                        source, {})


def _from_matrix(index: pd.Index, columns: list[tuple[float, str]], values: np.ndarray,
                 lines: np.ndarray, source: str, notes: dict) -> Panel:
    """A panel from a (units, columns) matrix of (time, variable) columns: every cell is an
    observation (NaN ones included, so that messages can name them)."""
    var_codes, variables = pd.factorize(np.array([v for _, v in columns], dtype=object))
    times = np.array([t for t, _ in columns], dtype=float)
    # every unit has every column: sorting the columns once puts the observations in the
    # panel's order (unit, time, variable) without sorting, and copying, all of them
    order = np.lexsort((var_codes, times))
    if not np.array_equal(order, np.arange(len(order))):
        values, times, var_codes = values[:, order], times[order], var_codes[order]
    n_units, n_cols = values.shape
    unit = np.repeat(np.arange(n_units, dtype=_index_dtype(n_units)), n_cols)
    # each observation's line is its unit's row: obs_lines None, not a copy per observation
    return Panel(index, tuple(str(v) for v in variables), unit, np.tile(times, n_units),
                 np.tile(var_codes.astype(code_dtype(len(variables))), n_units),
                 np.ascontiguousarray(values, dtype=float).ravel(), np.asarray(lines), None,
                 source, notes)


def _index_dtype(largest: int) -> type:
    """int32 for unit rows while they fit: 4 bytes an observation fewer."""
    return np.int32 if largest < np.iinfo(np.int32).max else np.int64


def _panel(units, variables, unit, time, variable, value, obs_lines, unit_lines, source,
           notes) -> Panel:
    time, value, obs_lines = np.asarray(time, float), np.asarray(value, float), \
        np.asarray(obs_lines)
    if not _ordered(unit, time, variable):  # a wide file's matrix is ordered already
        order = np.lexsort((variable, time, unit))
        unit, time, variable, value, obs_lines = (
            unit[order], time[order], variable[order], value[order], obs_lines[order])
    return Panel(units, tuple(str(v) for v in variables), unit.astype(np.int64, copy=False),
                 time, variable.astype(code_dtype(len(variables)), copy=False), value,
                 np.asarray(unit_lines), obs_lines, source, notes)


def _ordered(unit: np.ndarray, time: np.ndarray, variable: np.ndarray) -> bool:
    """Whether the observations are sorted by unit, time and variable (ties allowed)."""
    same_unit = unit[1:] == unit[:-1]
    same_time = same_unit & (time[1:] == time[:-1])
    return bool(np.all((unit[1:] > unit[:-1]) | (same_unit & (time[1:] > time[:-1]))
                       | (same_time & (variable[1:] >= variable[:-1]))))


# -- cells ------------------------------------------------------------------------------------
def _encoding(path: Path) -> str:
    """The file's encoding: UTF-8 (with or without BOM) if all of it is, else Latin-1
    (spreadsheets exported on Windows), which reads any byte.  Checked a block at a time,
    so that the file is never held whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        block = handle.read(ENCODING_BLOCK)
        if b"\0" in block[:1 << 16]:
            raise DataError(f"Data file '{path}' is not a text (CSV) file; use .csv or "
                            ".parquet.")
        try:
            while block:
                decoder.decode(block)
                block = handle.read(ENCODING_BLOCK)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig"


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, encoding=encoding, keep_default_na=False, na_values=[""],
                           dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"Data file '{path}' could not be read: "
                        f"{' '.join(str(error).split())}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise DataError(f"Reading '{path}' needs pyarrow: pip install 'sdfit[parquet]'.") from None
    except Exception as error:  # pyarrow raises many kinds for a file that is not Parquet
        raise DataError(f"Data file '{path}' could not be read as Parquet: "
                        f"{' '.join(str(error).split())}") from None


def _numbers(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cells as floats, and a mask of those that are text: neither a number nor blank
    nor a missing-value mark (NaN, NA, N/A)."""
    numeric = pd.to_numeric(cells, errors="coerce")
    text = cells.astype(str).str.strip().str.lower()
    bad = numeric.isna() & cells.notna() & ~text.isin(["", *MISSING_MARKS, "none"])
    return numeric.to_numpy(float), bad.to_numpy()


def _times(cells: pd.Series, source: str, column: str, first_line: int) -> np.ndarray:
    times = pd.to_numeric(cells, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(times)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"Data file '{source}', line {row + first_line}, column '{column}': "
                        f"'{cells.iloc[row]}' is not a time.")
    return times


def _unit_ids(frame: pd.DataFrame, source: str, first_line: int) -> pd.DataFrame:
    """Unit id columns as integers when they all are ('1.0' -> 1), else as stripped text;
    a column mixing numbers and text (a 'Total' row) is refused: its numbers would silently
    become text and match nothing."""
    out = {}
    for name, column in frame.items():
        text = column.astype(str).str.strip()
        if (text == "").any() or column.isna().any():
            row = int(np.flatnonzero(((text == "") | column.isna()).to_numpy())[0])
            raise DataError(f"Data file '{source}', line {row + first_line}: the unit id in "
                            f"column '{name}' is empty.")
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.notna().all():
            integral = (numeric == numeric.round()).all()
            out[name] = numeric.astype(np.int64) if integral else numeric
        elif numeric.notna().mean() > 0.5:
            row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
            raise DataError(f"Data file '{source}', line {row + first_line}: the unit id "
                            f"'{text.iloc[row]}' in column '{name}' is text while the others "
                            "are numbers (a summary row such as 'Total'?); remove that row.")
        else:
            out[name] = text
    return pd.DataFrame(out)


def _names(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _describe(uniques: pd.Index, code: int) -> str:
    from .panel import describe_ids

    return describe_ids(uniques[[code]])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
