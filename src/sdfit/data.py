"""Panels: observations of many units at a few times, read from CSV or Parquet.

Two layouts are read:

* **wide** (the census file): two header rows, the first naming the time and
  the second the variable of each column; the leading columns whose time
  cell is empty hold the unit ids, optionally named by a third row.
* **long** (tidy): one row per observation with columns ``time``,
  ``variable``, ``value`` and any other columns as unit ids.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import DataError
from .names import canonical, did_you_mean

LONG_COLUMNS = ("time", "variable", "value")
MISSING_MARKS = ["nan", "na", "n/a"]


@dataclass(frozen=True)
class Panel:
    """Observations of many units: one row per unit, one column per (time, variable).

    Attributes
    ----------
    frame : DataFrame
        Index: unit ids (one level per id column).  Columns: a MultiIndex with
        levels ``time`` (float) and ``variable`` (name as written in the file).
        Missing or non-numeric cells are NaN.
    source : str
        Where the data came from, for messages.
    lines : ndarray
        The file line of each unit row (1-based; in a long file, the line of the
        unit's first observation), for messages.
    non_numeric : dict
        ``(line, time, variable) -> text`` of the cells that held text instead of
        a number: they are NaN in ``frame``, and refused only if a problem needs them.
    """

    frame: pd.DataFrame
    source: str = "<data>"
    lines: np.ndarray | None = None
    non_numeric: dict[tuple[int, float, str], str] = field(default_factory=dict)

    def __post_init__(self):
        if self.lines is None:
            object.__setattr__(self, "lines", np.arange(len(self.frame)) + 1)
        duplicated = np.flatnonzero(self.frame.index.duplicated(keep=False))
        if len(duplicated):
            keys = self.frame.index[duplicated]
            same = [row for row, key in zip(duplicated, keys, strict=True) if key == keys[0]]
            others = len(duplicated) - len(same)
            raise DataError(
                f"Data file '{self.source}' has duplicate unit ids: "
                f"{_describe_units(keys[:1])} on lines "
                f"{' and '.join(str(line) for line in self.lines[same])}"
                + (f", and {others} more rows share ids" if others else "") + ".")

    # -- shape ----------------------------------------------------------------------
    @property
    def units(self) -> pd.Index:
        return self.frame.index

    @property
    def unit_columns(self) -> list[str]:
        return [str(n) for n in self.frame.index.names]

    @property
    def times(self) -> list[float]:
        return sorted(set(self.frame.columns.get_level_values("time")))

    @property
    def variables(self) -> list[str]:
        return list(dict.fromkeys(self.frame.columns.get_level_values("variable")))

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (f"Panel({len(self)} units x {len(self.times)} times x "
                f"{len(self.variables)} variables from '{self.source}')")

    # -- access -------------------------------------------------------------------------
    def variable(self, name: str) -> str:
        """The data's spelling of ``name`` (matched canonically), or a DataError."""
        for var in self.variables:
            if canonical(var) == canonical(name):
                return var
        hint = did_you_mean(name, self.variables)
        raise DataError(f"Data file '{self.source}' has no variable '{name}'.{hint}")

    def time(self, time: float) -> float:
        """The data's time equal to ``time``, or a DataError listing the times present."""
        for t in self.times:
            if np.isclose(t, time, rtol=0, atol=1e-9):
                return t
        times = ", ".join(_format_time(t) for t in self.times)
        raise DataError(f"Data file '{self.source}' has no time {_format_time(time)} "
                        f"(it has {times}).")

    def has(self, time: float, name: str) -> bool:
        return (time, name) in self.frame.columns

    def values(self, columns: Sequence[tuple[float, str]]) -> np.ndarray:
        """Array (units, len(columns)) of the given (time, variable) columns."""
        return self.frame.loc[:, list(columns)].to_numpy(dtype=float)

    def take(self, rows) -> Panel:
        """The panel restricted to some unit rows (positions or a boolean mask)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return Panel(self.frame.iloc[rows], self.source, self.lines[rows], self.non_numeric)

    def head(self, n: int) -> Panel:
        return self.take(np.arange(min(n, len(self))))

    def describe_rows(self, rows: Sequence[int], limit: int = 5) -> str:
        """'line 7 (state=1, county=3), ...' for messages about some unit rows."""
        parts = [f"line {self.lines[r]} ({_describe_units(self.units[[r]])})"
                 for r in rows[:limit]]
        more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
        return ", ".join(parts) + more

    # -- conversion ------------------------------------------------------------------
    def to_long(self) -> pd.DataFrame:
        """The long (tidy) table: unit id columns, ``time``, ``variable``, ``value``."""
        return self.frame.melt(ignore_index=False).reset_index()

    def to_csv(self, path: str | Path, layout: str = "wide") -> Path:
        """Write the panel as a wide (census-style) or long CSV, atomically."""
        from .results import atomic_write

        if layout not in ("wide", "long"):
            raise ValueError(f"layout must be 'wide' or 'long'; got {layout!r}")
        frame = self.frame if layout == "wide" else self.to_long()
        return atomic_write(Path(path), lambda p: frame.to_csv(
            p, index=layout == "wide", float_format="%.17g"))

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_long(cls, frame: pd.DataFrame, source: str = "<data>") -> Panel:
        """Build a panel from a long table with columns ``time, variable, value``
        and one or more unit id columns."""
        return _from_long(frame, source)


def read_panel(path: str | Path) -> Panel:
    """Read a wide (census-style) or long CSV, or a Parquet file, into a Panel.

    Raises
    ------
    DataError
        Missing, empty or malformed file, with the file, line and column at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file '{path}' does not exist.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file '{path}' is empty.")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        head = [row for _, row in zip(range(3), csv.reader(handle), strict=False)]
    if not head or not any(cell.strip() for cell in head[0]):
        raise DataError(f"Data file '{path}' is empty.")
    if {canonical(c) for c in head[0]} >= set(LONG_COLUMNS):
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DataError(f"Data file '{path}' could not be read: {error}") from None
        return _from_long(frame, str(path))
    return _read_wide(path, head)


def _read_wide(path: Path, head: list[list[str]]) -> Panel:
    if len(head) < 3:
        raise DataError(
            f"Data file '{path}' is neither wide (a row of times, a row of variables, then "
            "one row per unit) nor long (columns time, variable, value and unit ids)."
        )
    times_row, names_row = head[0], head[1]
    # unit id columns come first; their cell in the time row is empty or a label ("time")
    n_ids = next((i for i, c in enumerate(times_row) if _is_number(c)), len(times_row))
    if n_ids == 0 or n_ids == len(times_row):
        raise DataError(
            f"Data file '{path}' is neither wide (a row of times, a row of variables, then one "
            "row per unit, the leading columns holding unit ids) nor long (columns time, "
            "variable, value and unit ids)."
        )
    if len(names_row) != len(times_row):
        raise DataError(f"Data file '{path}': line 2 has {len(names_row)} cells but line 1 "
                        f"has {len(times_row)}.")
    has_id_names = all(c.strip() for c in head[2][:n_ids]) and not any(
        c.strip() for c in head[2][n_ids:])
    # ids as text; values parsed as floats by the C parser (8 bytes a cell), a column
    # holding text comes back as strings and is looked at alone
    raw = pd.read_csv(path, header=None, skiprows=3 if has_id_names else 2,
                      dtype={j: str for j in range(n_ids)}, keep_default_na=False,
                      na_values={j: [""] for j in range(n_ids, len(times_row))},
                      encoding="utf-8-sig")
    if raw.shape[1] != len(times_row):
        raise DataError(f"Data file '{path}' has rows of {raw.shape[1]} cells but a header of "
                        f"{len(times_row)}.")
    first_line = 4 if has_id_names else 3
    id_names = [c.strip() for c in head[2][:n_ids]] if has_id_names else [
        c.strip() or f"unit_{i}" for i, c in enumerate(names_row[:n_ids])]
    columns = []
    for j in range(n_ids, len(times_row)):
        time, name = times_row[j].strip(), names_row[j].strip()
        try:
            columns.append((float(time), name))
        except ValueError:
            raise DataError(f"Data file '{path}', line 1, column {j + 1}: '{time}' is not a "
                            "time.") from None
        if not name:
            raise DataError(f"Data file '{path}', line 2, column {j + 1}: the variable name "
                            "is empty.")
    values = np.empty((len(raw), len(columns)))
    notes = {}
    for col, (_, cells) in enumerate(raw.iloc[:, n_ids:].items()):
        if cells.dtype.kind in "iuf":  # all numbers (or blank)
            values[:, col] = cells.to_numpy()
            continue
        values[:, col], bad = _numbers(cells)
        notes.update({(first_line + row, *columns[col]): cells.iloc[row].strip()
                      for row in np.flatnonzero(bad)})
    index = pd.MultiIndex.from_frame(raw.iloc[:, :n_ids].apply(_ids), names=id_names)
    if n_ids == 1:
        index = index.get_level_values(0)
    frame = pd.DataFrame(values, index=index,
                         columns=pd.MultiIndex.from_tuples(columns, names=["time", "variable"]))
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()][0]
        raise DataError(f"Data file '{path}' has the column ({_format_time(dup[0])}, "
                        f"{dup[1]}) twice.")
    return Panel(frame, str(path), np.arange(len(frame)) + first_line, notes)


def _numbers(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cells as floats, and a mask of those that are text: neither a number nor blank
    nor a missing-value mark (NaN, NA, N/A)."""
    numeric = pd.to_numeric(cells, errors="coerce")
    text = cells.astype(str).str.strip().str.lower()
    bad = numeric.isna() & cells.notna() & ~text.isin(["", *MISSING_MARKS])
    return numeric.to_numpy(float), bad.to_numpy()


def _from_long(frame: pd.DataFrame, source: str) -> Panel:
    by_key = {canonical(c): c for c in frame.columns}
    missing = [c for c in LONG_COLUMNS if c not in by_key]
    if missing:
        raise DataError(f"Data file '{source}' lacks the column(s) {', '.join(missing)} of a "
                        "long table.")
    time, variable, value = (by_key[c] for c in LONG_COLUMNS)
    ids = [c for c in frame.columns if c not in (time, variable, value)]
    if not ids:
        raise DataError(f"Data file '{source}' has no unit id column besides time, variable "
                        "and value.")
    numeric, bad = _numbers(frame[value])
    text = frame[value].astype(str).str.strip()
    times = pd.to_numeric(frame[time], errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(f"Data file '{source}', line {row + 2}, column '{time}': "
                        f"'{frame[time].iloc[row]}' is not a time.")
    tidy = frame[ids].apply(_ids).assign(time=times.astype(float),
                                         variable=frame[variable].astype(str), value=numeric)
    tidy = tidy.reset_index(drop=True)
    # a unit's line: that of its first observation (line 1 is the header)
    first_line = tidy.assign(line=np.arange(len(tidy)) + 2).groupby(
        ids, sort=False)["line"].transform("min").to_numpy()
    dup = tidy.duplicated(ids + ["time", "variable"], keep=False)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"Data file '{source}', line {row + 2}: the observation of "
                        f"'{tidy['variable'].iloc[row]}' at time "
                        f"{_format_time(tidy['time'].iloc[row])} for this unit appears twice.")
    wide = tidy.pivot(index=ids, columns=["time", "variable"], values="value")
    wide = wide.sort_index(axis=1, level="time", sort_remaining=False)
    order = tidy[ids].drop_duplicates()
    wide = wide.loc[pd.MultiIndex.from_frame(order) if len(ids) > 1 else order[ids[0]]]
    notes = {(int(first_line[r]), float(tidy["time"].iloc[r]), tidy["variable"].iloc[r]):
             text.iloc[r] for r in np.flatnonzero(bad)}
    return Panel(wide, source, first_line[order.index.to_numpy()], notes)


def _read_parquet(path: Path) -> Panel:
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError(f"Reading '{path}' needs pyarrow: pip install 'sdfit[parquet]'.") from None
    except Exception as error:
        raise DataError(f"Data file '{path}' could not be read as Parquet: {error}") from None
    if isinstance(frame.columns, pd.MultiIndex):  # a wide frame written by Panel.frame.to_parquet
        frame.columns = pd.MultiIndex.from_tuples(
            [(float(t), str(v)) for t, v in frame.columns], names=["time", "variable"])
        return Panel(frame, str(path))
    return _from_long(frame, str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ids(column: pd.Series) -> pd.Series:
    """Unit ids as integers when they all are ('1.0' -> 1), else as stripped text."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.astype(np.int64)
    return column.astype(str).str.strip()


def _describe_units(index: pd.Index) -> str:
    names = [str(n) for n in index.names]
    parts = []
    for key in index:
        key = key if isinstance(key, tuple) else (key,)
        parts.append(", ".join(f"{n}={k}" for n, k in zip(names, key, strict=True)))
    return "; ".join(parts)


def _format_time(time: float) -> str:
    return f"{time:g}"
