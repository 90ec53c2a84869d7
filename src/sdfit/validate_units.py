"""Units whose needed data are invalid: refused in one sentence naming each unit, its line,
the column and the time — or dropped and listed, with ``drop_invalid``.

Needed are the initial stocks taken from the data, the per-unit inputs and the observations
of the targets.  A missing observation is simply not observed; text where a number
belongs, an infinite value, or a value the likelihood cannot take (a negative count, a
non-positive lognormal observation) is invalid, as is a unit with no observation at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import Panel
from .exceptions import DataError
from .resolved import Resolved, UnitData

#: Observations the likelihood cannot take: (test of the value, its description).
DOMAINS = {
    "lognormal": (lambda v: v <= 0, "non-positive value {:g} (the lognormal likelihood needs "
                  "positive observations)"),
    "poisson": (lambda v: v < 0, "negative value {:g} (a count)"),
    "negative-binomial": (lambda v: v < 0, "negative value {:g} (a count)"),
}


def valid_units(resolved: Resolved, data: UnitData, panel: Panel, rows: dict,
                drop: bool) -> tuple[Resolved, UnitData, Panel, pd.DataFrame]:
    """Check every value the problem needs; refuse or drop the units with invalid ones."""
    _check_times(resolved, data, panel, rows["observations"])
    reasons: dict[int, str] = {}
    obs = resolved.observations
    if not np.isfinite(data.initial).all():  # mostly all are: no column to look through
        for column, (values, where) in enumerate(zip(data.initial.T, rows["initial"],
                                                     strict=True)):
            _flag(reasons, panel, values, where, resolved.stocks.data_names[column],
                  resolved.start_time, needed=True)
    for column, (values, where) in enumerate(zip(data.constants.T, rows["constants"],
                                                 strict=True)):
        name = resolved.inputs.columns[resolved.inputs.constants[column].name]
        _flag(reasons, panel, values, where, name, None, needed=True)
    for slot, (x, _), series_rows in zip(resolved.inputs.series, data.series, rows["series"],
                                         strict=True):
        name = resolved.inputs.columns[slot.name]
        bad = np.flatnonzero(~np.isfinite(panel.value[series_rows]))
        for row in series_rows[bad]:
            unit = int(panel.unit[row])
            reasons.setdefault(unit, _why(panel, row, name, float(panel.time[row])))
        for unit in np.flatnonzero(np.isnan(x).all(axis=1)):
            reasons.setdefault(int(unit), f"no value in column '{name}'")
    where = rows["observations"]
    values = np.where(data.obs_mask, data.obs_value, 0.0)
    domain = DOMAINS.get(obs.likelihood)
    bad = data.obs_mask & ~np.isfinite(data.obs_value)
    if domain is not None:
        with np.errstate(invalid="ignore"):
            bad |= data.obs_mask & domain[0](values)
    if bad.any():  # mostly no slot is bad: np.nonzero alone costs 25 µs
        for unit, slot in zip(*np.nonzero(bad), strict=True):
            if unit in reasons:
                continue
            row = where[unit, slot]
            value = data.obs_value[unit, slot]
            name = panel.variables[panel.variable[row]]
            if np.isfinite(value) and domain is not None:
                reasons[int(unit)] = (domain[1].format(value) + f" in column '{name}' at time "
                                      f"{panel.time[row]:g}")
            else:
                reasons[int(unit)] = _why(panel, row, name, float(panel.time[row]))
    for unit in np.flatnonzero(data.n_obs == 0):
        reasons.setdefault(int(unit), "no observation of the targets "
                           f"({', '.join(obs.data_names[:4])}"
                           f"{', ...' if len(obs.data_names) > 4 else ''})")
    if not reasons:
        return resolved, data, panel, pd.DataFrame()
    units = sorted(reasons)
    if not drop:
        listed = "; ".join(f"{panel.describe_rows([u])}: {reasons[u]}" for u in units[:5])
        more = f"; and {len(units) - 5} more" if len(units) > 5 else ""
        raise DataError(
            f"Data file '{panel.source}' has {len(units)} unit(s) with non-numeric, missing, "
            f"infinite or impossible values the problem needs: {listed}{more}; fix them or "
            "pass --drop-invalid to skip these units.")
    dropped = panel.units[units].to_frame(index=False).assign(
        line=panel.lines[units], reason=[reasons[u] for u in units])
    keep = np.ones(len(panel), dtype=bool)
    keep[units] = False
    if not keep.any():
        raise DataError(f"Every unit of '{panel.source}' has invalid data the problem needs "
                        f"(first: {panel.describe_rows([units[0]])}: {reasons[units[0]]}).")
    return resolved, data.take(keep), panel.take(keep), dropped


def _flag(reasons: dict, panel: Panel, values: np.ndarray, where: np.ndarray, name: str,
          time: float | None, needed: bool) -> None:
    for unit in np.flatnonzero(~np.isfinite(values)):
        if unit in reasons:
            continue
        row = where[unit]
        if row < 0:
            at = f" at time {time:g}" if time is not None else ""
            reasons[int(unit)] = f"missing value in column '{name}'{at}"
        else:
            reasons[int(unit)] = _why(panel, row, name, float(panel.time[row]))


def _why(panel: Panel, row: int, name: str, time: float) -> str:
    value = panel.value[row]
    text = panel.non_numeric.get((panel.obs_line(row), time, name))
    kind = (f"non-numeric value '{text}'" if text is not None else
            "missing value" if np.isnan(value) else "infinite value")
    return f"{kind} in column '{name}' at time {time:g}"


def _check_times(resolved: Resolved, data: UnitData, panel: Panel, where: np.ndarray) -> None:
    """Observation times must lie within the run (a spec or data error, never dropped)."""
    span = resolved.time_step * 1e-6
    outside = data.obs_mask & ((data.obs_time < resolved.start_time - span)
                               | (data.obs_time > resolved.final_time + span))
    if not outside.any():
        return
    unit, slot = (int(i[0]) for i in np.nonzero(outside))
    row = where[unit, slot]
    count = int(outside.any(axis=1).sum())
    more = f", as do observations of {count - 1} more units" if count > 1 else ""
    raise DataError(
        f"Data file '{panel.source}', {panel.describe_observation(row)}: the observation of "
        f"'{panel.variables[panel.variable[row]]}' at time {data.obs_time[unit, slot]:g} lies "
        f"outside the run from {resolved.start_time:g} to {resolved.final_time:g} (FINAL "
        f"TIME of model '{resolved.model.name}'){more}; restrict [targets] times or extend "
        "the model's run.")
