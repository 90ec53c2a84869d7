"""Assemble chunk results (in unit order) into a :class:`~sdfit.results.FitResult`, one chunk
at a time: each chunk's diagnostics come from its Jacobians, which are then let go, so
memory grows with the tables only.  The tables are kept as columns, joined one column at a
time into frames that share their arrays (pandas' ``copy=False``): never two copies of a
table at once, which at a million units is the difference of a gigabyte."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import likelihoods
from .data import Panel
from .diagnostics import add_diagnostics, summarise, unit_diagnostics
from .fitting import ChunkResult
from .resolved import Resolved, UnitData
from .results import FitResult, RunRecord
from .solvers import Status


def assemble(resolved: Resolved, panel: Panel, data: UnitData, chunks: Iterable[ChunkResult],
             dropped: pd.DataFrame, run: RunRecord, joint: bool = False) -> FitResult:
    """The result of a fit from its chunks, diagnosed chunk by chunk (or all at once when
    shared parameters couple the units: ``joint``)."""
    ids = panel.units.to_frame(index=False)
    problem = resolved.describe()
    names = resolved.parameters.names
    tables, targets, penalty_only, first = [], [], Counter(), 0
    jacobians = []
    for chunk in chunks:
        rows = slice(first, first + len(chunk))
        first = rows.stop
        part = data.take(rows)
        table = _unit_table(resolved, ids.iloc[rows], chunk, part)
        if joint:
            jacobians.append(chunk.jacobian)
        else:
            columns, penalised = unit_diagnostics(chunk.jacobian, chunk.objective, chunk.x,
                                                  names, part.n_obs, problem)
            table |= columns
            penalty_only.update(penalised)
        tables.append(table)
        targets.append(_target_table(resolved, ids.iloc[rows], part, chunk))
    result = FitResult(_join(tables), _join(targets), names, dropped, run)
    if joint:
        return add_diagnostics(result, np.concatenate(jacobians), data.n_obs)
    return summarise(result, dict(penalty_only))


def _join(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The chunks' columns joined into one frame, emptying ``parts`` column by column."""
    joined = {}
    for name in list(parts[0]) if parts else []:
        pieces = [part.pop(name) for part in parts]
        joined[name] = (pd.concat(pieces, ignore_index=True)  # the units' ids keep their dtype
                        if isinstance(pieces[0], pd.Series) else np.concatenate(pieces))
    parts.clear()
    return pd.DataFrame(joined, copy=False)


def _unit_table(resolved: Resolved, ids: pd.DataFrame, chunk: ChunkResult,
                data: UnitData) -> dict[str, np.ndarray]:
    """One row per unit: ids, fitted parameters, outcome, likelihood (columns)."""
    table = {c: ids[c].reset_index(drop=True) for c in ids.columns}
    table |= {name: chunk.x[:, j] for j, name in enumerate(resolved.parameters.names)}
    table["sse"] = chunk.sse
    table["success"] = chunk.status > 0
    table["status"] = chunk.status
    table["message"] = np.array([Status(s).message for s in chunk.status], dtype=object)
    table["nfev"] = chunk.nfev
    obs = resolved.observations
    n = data.n_obs
    k = (len(resolved.parameters) - int(resolved.parameters.shared.sum())
         + likelihoods.extra_parameters(obs.likelihood, obs.loss, chunk.dispersion.shape[1]))
    table["n_obs"] = np.asarray(n)
    table["objective"] = chunk.objective
    table["nll"] = chunk.nll
    with np.errstate(invalid="ignore", divide="ignore"):
        table["aic"] = 2 * k + 2 * chunk.nll
        table["bic"] = k * np.log(n) + 2 * chunk.nll
    if resolved.starts > 1:
        table["starts_agree"] = chunk.starts_agree
    if chunk.dispersion.shape[1] == 1:
        table["dispersion"] = chunk.dispersion[:, 0]
    else:
        for j, name in enumerate(obs.names[:chunk.dispersion.shape[1]]):
            table[f"{name}_dispersion"] = chunk.dispersion[:, j]
    return table


def _target_table(resolved: Resolved, ids: pd.DataFrame, data: UnitData,
                  chunk: ChunkResult) -> dict[str, np.ndarray]:
    """One row per observation compared: ids, time, variable, observed, fitted (columns)."""
    mask = data.obs_mask
    unit = np.nonzero(mask)[0]
    names = np.asarray(resolved.observations.names, dtype=object)
    return {
        **{c: ids[c].iloc[unit].reset_index(drop=True) for c in ids.columns},
        "time": data.obs_time[mask],
        "variable": names[data.obs_var[mask]],
        "observed": data.obs_value[mask],
        "fitted": chunk.fitted[mask],
    }
