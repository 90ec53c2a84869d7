"""Panels: observations of many units, each at its own times, as flat columns.

A :class:`Panel` holds one row per observation — unit, time, variable, value — in NumPy
columns, and the unit ids once.  Units may have different numbers of observations at
different times; a cell that is missing is simply not there (or NaN).  Everything the
fitter needs is taken out in one vectorised step: a value per unit at one time (initial
stocks, covariates), a padded table per unit (time-series inputs) or the padded
observations of the targets (:meth:`Panel.observations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..names import canonical, did_you_mean

#: Two times closer than this are the same time (data written with rounding).
TIME_ATOL = 1e-9


#: Observations hashed at once by Panel.content_hash.
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Panel:
    """Observations of many units.

    Attributes
    ----------
    units : pandas.Index
        The unit ids, one level per id column (a MultiIndex for several).
    variables : tuple of str
        The data's variable names, as written in the file.
    unit, time, variable, value : ndarray
        One entry per observation: the unit's row in ``units``, the time, the variable's
        position in ``variables`` and the value (NaN when missing or not a number).
    lines : ndarray
        The file line of each unit (its row, or its first observation), for messages.
    obs_lines : ndarray or None
        The file line of each observation, for messages; None when it is its unit's line
        (a wide table: a row per unit), so that no copy of ``lines`` per observation is
        kept (see :meth:`obs_line`).
    source : str
        Where the data came from.
    non_numeric : dict
        ``(line, time, variable) -> text`` of the cells that held text instead of a number:
        NaN in ``value``, refused only if a problem needs them.
    """

    units: pd.Index
    variables: tuple[str, ...]
    unit: np.ndarray
    time: np.ndarray
    variable: np.ndarray
    value: np.ndarray
    lines: np.ndarray
    obs_lines: np.ndarray | None
    source: str = "<data>"
    non_numeric: dict[tuple[int, float, str], str] = field(default_factory=dict)
    layout: dict = field(default_factory=dict)  # how to read it again: {units, time} if tidy

    def __post_init__(self):
        duplicated = np.flatnonzero(self.units.duplicated(keep=False))
        if len(duplicated):
            keys = self.units[duplicated]
            same = [row for row, key in zip(duplicated, keys, strict=True) if key == keys[0]]
            others = len(duplicated) - len(same)
            raise DataError(
                f"Data file '{self.source}' has duplicate unit ids: "
                f"{describe_ids(keys[:1])} on lines "
                f"{' and '.join(str(line) for line in self.lines[same])}"
                + (f", and {others} more rows share ids" if others else "") + ".")

    # -- shape ----------------------------------------------------------------------------
    @property
    def unit_columns(self) -> list[str]:
        return [str(n) for n in self.units.names]

    @property
    def times(self) -> list[float]:
        return np.unique(self.time).tolist()  # not a Python float per observation

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return (f"Panel({len(self)} units, {len(self.value)} observations of "
                f"{len(self.variables)} variables at {len(self.times)} times, from "
                f"'{self.source}')")

    # -- names and times ------------------------------------------------------------------
    def variable_name(self, name: str) -> str:
        """The data's spelling of ``name`` (matched canonically), or a DataError."""
        return self.variables[self.variable_index(name)]

    def variable_index(self, name: str) -> int:
        key = canonical(name)
        for j, var in enumerate(self.variables):
            if canonical(var) == key:
                return j
        hint = did_you_mean(name, self.variables)
        raise DataError(f"Data file '{self.source}' has no variable '{name}'.{hint}")

    def has_time(self, time: float) -> bool:
        return bool(np.any(np.abs(self.time - time) <= TIME_ATOL))

    def check_time(self, time: float, what: str = "time") -> float:
        """``time`` if some observation is at it, else a DataError listing the times."""
        if self.has_time(time):
            return float(time)
        times = ", ".join(f"{t:g}" for t in self.times[:12])
        more = ", ..." if len(self.times) > 12 else ""
        raise DataError(f"Data file '{self.source}' has no {what} {time:g} (it has "
                        f"{times}{more}).")

    # -- taking values out ----------------------------------------------------------------
    def at(self, time: float, variable: int) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's value of ``variable`` (an index) at ``time``: values (U,) with NaN
        where the unit has none, and the observation row of each (-1 where none)."""
        values, where = self.table_at(time, [variable])
        return values[:, 0], where[:, 0]

    def table_at(self, time: float, variables: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's values of ``variables`` (indices) at ``time``: values (U, S) with NaN
        where a unit has none, and the observation row of each (-1 where none).  One pass
        over the panel for all of them: the initial stocks of a model are many columns."""
        codes = list(dict.fromkeys(variables))  # each variable once, in order
        column = np.full(len(self.variables), -1, dtype=self.variable.dtype)
        column[codes] = np.arange(len(codes))
        columns = np.take(column, self.variable)  # a gather: faster than np.isin
        rows = np.flatnonzero((columns >= 0) & (np.abs(self.time - time) <= TIME_ATOL))
        cells = self.unit[rows].astype(np.intp) * len(codes) + columns[rows]  # (unit, column)
        values = np.full((len(self), len(codes)), np.nan)
        where = np.full((len(self), len(codes)), -1)
        # rows ascend: a cell given twice keeps its last row, as one assignment per row would
        values.ravel()[cells] = self.value[rows]
        where.ravel()[cells] = rows
        if len(codes) < len(variables):  # a variable asked for twice: its column repeated
            pick = [codes.index(v) for v in variables]
            return values[:, pick], where[:, pick]
        return values, where

    def observed_at(self, time: float) -> np.ndarray:
        """Which variables (by index) some unit has a row of at ``time``: bool (V,)."""
        seen = np.zeros(len(self.variables), dtype=bool)
        seen[self.variable[np.abs(self.time - time) <= TIME_ATOL]] = True
        return seen

    def rows_of(self, variables: Sequence[int], times: Sequence[float] | None = None
                ) -> np.ndarray:
        """Observation rows of the given variables (indices), optionally only at ``times``,
        in unit, then time, then variable order."""
        wanted = np.zeros(len(self.variables), dtype=bool)
        wanted[np.asarray(variables, dtype=np.intp)] = True
        chosen = np.take(wanted, self.variable)  # a gather: faster than np.isin
        if times is not None:
            near = np.zeros(len(self.time), dtype=bool)
            for t in times:
                near |= np.abs(self.time - t) <= TIME_ATOL
            chosen &= near
        rows = np.flatnonzero(chosen)
        if self._in_order(rows):  # as read from a file, mostly: the sort would change nothing
            return rows
        order = np.lexsort((self.variable[rows], self.time[rows], self.unit[rows]))
        return rows[order]

    def _in_order(self, rows: np.ndarray) -> bool:
        """Whether the ascending ``rows`` are already in unit, time, variable order (ties
        in row order, as the stable sort of :meth:`rows_of` leaves them).  A NaN time
        compares false, so it is never taken as in order."""
        unit, time, variable = self.unit[rows], self.time[rows], self.variable[rows]
        if not (unit[1:] >= unit[:-1]).all():
            return False
        later = (unit[1:] > unit[:-1]) | (time[1:] > time[:-1])
        return bool((later | ((time[1:] == time[:-1]) & (variable[1:] >= variable[:-1])))
                    .all())

    def padded(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observation ``rows`` (sorted by unit) laid out per unit: an index array (U, K)
        into ``rows``' observations (-1 for padding) and the count of each unit."""
        units = self.unit[rows]
        counts = np.bincount(units, minlength=len(self))
        width = int(counts.max()) if len(counts) and counts.size else 0
        if len(rows) == len(self) * width:  # every unit has K rows (a regular panel)
            return np.array(rows, dtype=np.int64).reshape(len(self), width), counts
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(rows)) - starts[units]
        layout = np.full((len(self), width), -1, dtype=np.int64)
        layout[units, position] = rows
        return layout, counts

    def obs_line(self, row: int) -> int:
        """The file line of one observation."""
        return int(self.lines[self.unit[row]] if self.obs_lines is None
                   else self.obs_lines[row])

    def describe_observation(self, row: int) -> str:
        """'line 7 (state=1, county=3)' of one observation, for messages."""
        return f"line {self.obs_line(row)} ({describe_ids(self.units[[self.unit[row]]])})"

    def describe_rows(self, rows: Sequence[int], limit: int = 5) -> str:
        """'line 7 (state=1, county=3), ...' for messages about some unit rows."""
        parts = [f"line {self.lines[r]} ({describe_ids(self.units[[r]])})"
                 for r in rows[:limit]]
        more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
        return ", ".join(parts) + more

    # -- subsets --------------------------------------------------------------------------
    def take(self, rows) -> Panel:
        """The panel restricted to some units (positions or a boolean mask)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        renumber = np.full(len(self), -1)
        renumber[rows] = np.arange(len(rows))
        kept = np.flatnonzero(renumber[self.unit] >= 0)
        kept = kept[np.argsort(renumber[self.unit[kept]], kind="stable")]
        return Panel(self.units[rows], self.variables, renumber[self.unit[kept]],
                     self.time[kept], self.variable[kept], self.value[kept], self.lines[rows],
                     None if self.obs_lines is None else self.obs_lines[kept], self.source,
                     self.non_numeric, self.layout)

    def head(self, n: int) -> Panel:
        return self.take(np.arange(min(n, len(self))))

    # -- conversion -----------------------------------------------------------------------
    def to_long(self) -> pd.DataFrame:
        """The long table: unit id columns, ``time``, ``variable``, ``value``."""
        ids = self.units[self.unit].to_frame(index=False)
        return ids.assign(time=self.time, variable=np.asarray(self.variables,
                                                              dtype=object)[self.variable],
                          value=self.value)

    @property
    def frame(self) -> pd.DataFrame:
        """The wide table: one row per unit, one column per (time, variable) (NaN where a
        unit has no observation)."""
        columns = sorted(set(zip(self.time.tolist(), self.variable.tolist(), strict=True)))
        position = {c: j for j, c in enumerate(columns)}
        values = np.full((len(self), len(columns)), np.nan)
        cols = np.array([position[c] for c in zip(self.time.tolist(), self.variable.tolist(),
                                                  strict=True)], dtype=np.int64)
        values[self.unit, cols] = self.value
        index = pd.MultiIndex.from_tuples([(t, self.variables[v]) for t, v in columns],
                                          names=["time", "variable"])
        return pd.DataFrame(values, index=self.units, columns=index)

    def to_csv(self, path: str | Path, layout: str = "wide") -> Path:
        """Write the panel as a wide (census-style) or long CSV, atomically."""
        from ..files import atomic_write

        if layout not in ("wide", "long"):
            raise ValueError(f"layout must be 'wide' or 'long'; got {layout!r}")
        frame = self.frame if layout == "wide" else self.to_long()
        return atomic_write(Path(path), lambda p: frame.to_csv(
            p, index=layout == "wide", float_format="%.17g"))

    def content_hash(self) -> str:
        """sha256 of what was read (ids, observations), independent of the file."""
        import hashlib

        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(self.units.to_frame(index=False),
                                                 index=False).to_numpy().tobytes())
        digest.update(repr(self.variables).encode())
        # hashed as the int64 / int32 / float64 they always were, whatever the arrays'
        # dtypes now (compact ones for big panels), a block at a time
        for column, dtype in ((self.unit, np.int64), (self.time, np.float64),
                              (self.variable, np.int32), (self.value, np.float64)):
            for first in range(0, len(column), HASH_BLOCK):
                block = column[first:first + HASH_BLOCK]
                digest.update(np.ascontiguousarray(block, dtype=dtype).tobytes())
        return digest.hexdigest()


def code_dtype(n_codes: int) -> type:
    """The smallest integer type of codes 0..n_codes-1 (variables of a panel, targets, the
    categories of a table's column: pandas keeps a categorical's codes in the same one)."""
    return next(t for t in (np.int8, np.int16, np.int32) if n_codes < np.iinfo(t).max)


def describe_ids(index: pd.Index) -> str:
    """'state=1, county=3' for unit ids (several units separated by '; ')."""
    names = [str(n) for n in index.names]
    parts = []
    for key in index:
        key = key if isinstance(key, tuple) else (key,)
        parts.append(", ".join(f"{n}={k}" for n, k in zip(names, key, strict=True)))
    return "; ".join(parts)
