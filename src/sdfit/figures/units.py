"""How figures and the report name units and read their fit: ids, county names,
success, identifiability."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..results import FitResult


def is_counties(result: FitResult) -> bool:
    """Whether the units are US counties: unit id columns ``state`` and ``county``."""
    return {"state", "county"} <= set(map(str.lower, result.unit_columns))


def unit_noun(result: FitResult, count: int = 2) -> str:
    if is_counties(result):
        return "county" if count == 1 else "counties"
    return "unit" if count == 1 else "units"


def county_ids(result: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """The state and county FIPS columns of a county result."""
    columns = {c.lower(): c for c in result.unit_columns}
    return (result.table[columns["state"]].to_numpy(),
            result.table[columns["county"]].to_numpy())


def unit_keys(table: pd.DataFrame, unit_columns: list[str]) -> list[str]:
    """``"state=6, county=37"`` for every row: how sdfit names a unit everywhere (the
    diagnostics' summary, the report, the keys of unit stories)."""
    ids = [table[c].to_numpy() for c in unit_columns]
    return [", ".join(f"{c}={_id(v)}" for c, v in zip(unit_columns, row, strict=True))
            for row in zip(*ids, strict=True)]


def unit_labels(result: FitResult, names: pd.Series | None = None) -> list[str]:
    """``"Los Angeles County, California (state=6, county=37)"`` where ``names`` (county
    names by state and county, from the shapefile) knows the unit, else its key."""
    keys = unit_keys(result.table, result.unit_columns)
    if names is None or not is_counties(result):
        return keys
    state, county = county_ids(result)
    found = names.reindex(pd.MultiIndex.from_arrays([fips(state), fips(county)]))
    return [f"{n} ({k})" if isinstance(n, str) else k
            for n, k in zip(found.to_numpy(), keys, strict=True)]


def fips(values) -> np.ndarray:
    """FIPS numbers as integers (-1 where a value is not a number)."""
    values = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy(float)
    return np.where(np.isfinite(values), values, -1).astype(np.int64)


def identifiable(result: FitResult, parameter: str) -> np.ndarray:
    """Per unit: whether ``parameter`` is identifiable (True where the fit has no
    diagnostics, or the unit failed and was not assessed)."""
    column = result.table.get(f"{parameter}_identifiable")
    if column is None:
        return np.ones(len(result.table), dtype=bool)
    assessed = result.table["rank"].to_numpy() >= 0 if "rank" in result.table else True
    return ~assessed | column.fillna(True).astype(bool).to_numpy()


def pick_best_median_worst(sse: Mapping[str, float]) -> dict[str, str]:
    """``{"best": key, "median": key, "worst": key}`` by SSE (NaN last); fewer entries
    when there are fewer than three keys."""
    keys = sorted(sse, key=lambda k: (not np.isfinite(sse[k]), sse[k]))
    picks = {"best": 0, "median": (len(keys) - 1) // 2, "worst": len(keys) - 1}
    chosen: dict[str, str] = {}
    for rank, at in picks.items():
        if keys and keys[at] not in chosen.values():
            chosen[rank] = keys[at]
    return chosen


def grid_units(result: FitResult) -> dict[str, str]:
    """Keys (see :func:`unit_keys`) of the best, median and worst-fitting units of
    ``result``: the units whose stories the report's grid shows."""
    keys = unit_keys(result.table, result.unit_columns)
    return pick_best_median_worst(dict(zip(keys, result.table["sse"].to_numpy(float),
                                           strict=True)))


def _id(value) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # FIPS numbers read as floats name the same unit
    return str(value)
