"""Each unit's story: its fitted trajectories over the whole run beside its observations —
the targets it was fitted to, and what it was not fitted to (excluded variables, values it
started from) — with its parameters and their intervals.

A result fresh from :func:`sdfit.fit` keeps what it ran on; one read from a folder poses its
problem again from ``run.json`` (the model file, the data file and the problem as given).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .exceptions import DataError
from .objective import Objective


@dataclass(frozen=True)
class UnitStory:
    """What a figure of one unit shows."""

    label: str  # e.g. "state=6, county=37"
    times: np.ndarray  # (T,) simulation times over the whole run
    curves: dict[str, np.ndarray]  # variable -> (T,) simulated trajectory
    observations: pd.DataFrame  # time, variable, observed, fitted, used (fitted vs not)
    parameters: pd.DataFrame  # index parameter; value, ci_low, ci_high, identifiable
    sse: float


def drawn_variables(story: UnitStory) -> list[str]:
    """The variables a story draws: those with a curve, then those only observed."""
    return list(dict.fromkeys([*story.curves, *story.observations["variable"]]))


def unit_stories(result, units: Iterable | None = None) -> dict[str, UnitStory]:
    """The stories of some units of ``result`` (ids as in its table, or row numbers; default
    every unit), by label, in the order asked."""
    resolved, data, panel, problem = _context(result)
    rows = [_row_of(result, unit) for unit in (range(len(result.table)) if units is None
                                               else units)]
    rows = list(dict.fromkeys(rows))
    from .resolution import modelled

    drawn = modelled(problem, resolved.model, panel)  # targets and excluded alike
    slots = [_slot(resolved.model, name) for name in drawn]
    record = tuple(dict.fromkeys(ident for ident, _ in slots))
    columns = [(record.index(ident), index) for ident, index in slots]
    objective = Objective(resolved, data)
    x = result.table[result.parameters].to_numpy(float)[rows]
    times, values = objective.simulate(x, np.asarray(rows), record, columns, None)
    stories = {}
    names = list(drawn)
    for k, row in enumerate(rows):
        curves = {name: values[k, :, j] for j, name in enumerate(names)}
        label = ", ".join(f"{c}={v}" for c, v in
                          result.table.loc[row, result.unit_columns].items())
        stories[label] = UnitStory(label, times, curves,
                                   _observations(result, panel, drawn, curves, times, row),
                                   _parameters(result, row),
                                   float(result.table.loc[row, "sse"]))
    return stories


def _context(result):
    """(resolved, unit data, panel, problem) of a result: kept from the fit, or posed again
    from its run record."""
    from .problem import Problem

    problem = Problem(**result.run.request) if result.run.request else None
    if result.context is not None:
        resolved, data, panel = result.context
        return resolved, data, panel, problem
    from .data import read_panel
    from .model import open_model
    from .resolution import resolve_panel

    run = result.run
    if problem is None:
        raise DataError("This result's run.json does not say which problem it fitted; fit "
                        "again with this sdfit to draw its units.")
    try:
        panel = read_panel(run.data, **run.data_layout)
    except DataError as error:
        raise DataError(f"Drawing units needs the data the fit read: {error}") from None
    model = open_model(run.model, run.engine)
    resolved, data, panel, _ = resolve_panel(problem, model, panel,
                                             method=run.problem.get("method"),
                                             drop_invalid=run.dropped > 0)
    if len(data) != len(result.table):
        raise DataError(f"The data file '{run.data}' no longer gives the {len(result.table)} "
                        "units of this result; draw units from a fresh fit.")
    return resolved, data, panel, problem


def _row_of(result, unit) -> int:
    """A unit's row number in the table, from its id (a value or tuple) or row number."""
    row = result._row(unit)
    return int(row.name) if isinstance(row.name, int | np.integer) else int(
        result.table.index.get_loc(row.name))


def _slot(model, name: str) -> tuple[str, tuple[int, ...]]:
    var, index = model.element(name)
    return var.ident, index


def _observations(result, panel, drawn: dict[str, str], curves, times, row: int
                  ) -> pd.DataFrame:
    """Every observation of the unit of a drawn variable: used (a target compared in the
    fit) or not (an excluded variable, a value a stock started from)."""
    ids = result.table.loc[row, result.unit_columns]
    targets = result.targets
    mine = targets[(targets[result.unit_columns] == ids.to_numpy()).all(axis=1)]
    fitted = dict(zip(zip(mine["time"].round(9), mine["variable"], strict=True),
                      mine["fitted"], strict=True))  # exact at the observation times
    unit = int(np.flatnonzero((panel.units.to_frame(index=False).to_numpy()
                               == ids.to_numpy()).all(axis=1))[0])
    rows = []
    for name, data_name in drawn.items():
        j = panel.variable_index(data_name)
        take = (panel.unit == unit) & (panel.variable == j) & ~np.isnan(panel.value)
        for t, y in zip(panel.time[take], panel.value[take], strict=True):
            key = (round(float(t), 9), name)
            rows.append({"time": t, "variable": name, "observed": y,
                         "fitted": fitted.get(key, float(np.interp(t, times, curves[name]))),
                         "used": key in fitted})
    return pd.DataFrame(rows, columns=["time", "variable", "observed", "fitted", "used"])


def _parameters(result, row: int) -> pd.DataFrame:
    table = result.table
    out = []
    for p in result.parameters:
        out.append({"parameter": p, "value": table.loc[row, p],
                    "ci_low": table.loc[row].get(f"{p}_ci_low", np.nan),
                    "ci_high": table.loc[row].get(f"{p}_ci_high", np.nan),
                    "identifiable": bool(table.loc[row].get(f"{p}_identifiable", True))})
    return pd.DataFrame(out).set_index("parameter")
