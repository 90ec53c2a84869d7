"""Assemble chunk results into a :class:`~sdfit.results.FitResult`, one chunk at a time and
in any order: each chunk is reduced on arrival to its table columns (its diagnostics come
from its Jacobians, which are then let go), and the tables are built at the end one column
at a time, so that memory holds the finished tables and little else (a million units:
issue 15)."""

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
    """The result of a fit from its chunks in unit order, diagnosed chunk by chunk (or all
    at once when shared parameters couple the units: ``joint``)."""
    assembler = Assembler(resolved, panel, data, joint)
    first = 0
    for chunk in chunks:
        assembler.add(first, chunk)
        first += len(chunk)
    return assembler.result(dropped, run)


class Assembler:
    """Collects chunk results as they come (``add(first_unit, chunk)``, any order) as
    compact columns, then builds the :class:`FitResult` (``result``)."""

    def __init__(self, resolved: Resolved, panel: Panel, data: UnitData, joint: bool = False):
        self.resolved, self.panel, self.data, self.joint = resolved, panel, data, joint
        self.parts: dict[int, tuple[dict, dict]] = {}  # first unit -> unit, target columns
        self.penalty_only: Counter = Counter()
        self.jacobians: dict[int, np.ndarray] = {}  # joint fits only

    def add(self, first: int, chunk: ChunkResult) -> None:
        part = self.data.take(slice(first, first + len(chunk)))
        columns = _unit_columns(self.resolved, chunk, part)
        if self.joint:
            self.jacobians[first] = chunk.jacobian
        else:
            diagnostics, penalised = unit_diagnostics(
                chunk.jacobian, chunk.objective, chunk.x, self.resolved.parameters.names,
                part.n_obs, self.resolved.describe())
            columns |= diagnostics
            self.penalty_only.update(penalised)
        mask = part.obs_mask
        targets = {"unit": np.nonzero(mask)[0] + first, "time": part.obs_time[mask],
                   "variable": part.obs_var[mask], "observed": part.obs_value[mask],
                   "fitted": chunk.fitted[mask]}
        self.parts[first] = (columns, targets)

    def result(self, dropped: pd.DataFrame, run: RunRecord) -> FitResult:
        order = sorted(self.parts)
        units = [self.parts[k][0] for k in order]
        targets = [self.parts[k][1] for k in order]
        self.parts = {}
        ids = self.panel.units.to_frame(index=False)
        table = _frame(ids, units, self.resolved.parameters.names)
        rows = _join(targets, "unit")
        names = np.asarray(self.resolved.observations.names, dtype=object)
        target_ids = {c: ids[c].to_numpy()[rows] for c in ids.columns}
        del rows
        target_table = pd.DataFrame(
            target_ids | {"time": _join(targets, "time"),
                          "variable": names[_join(targets, "variable")],
                          "observed": _join(targets, "observed"),
                          "fitted": _join(targets, "fitted")}, copy=False)
        result = FitResult(table, target_table, self.resolved.parameters.names, dropped, run)
        if self.joint:
            jacobians = np.concatenate([self.jacobians[k] for k in order])
            return add_diagnostics(result, jacobians, self.data.n_obs)
        return summarise(result, dict(self.penalty_only))


def _join(parts: list[dict], name: str) -> np.ndarray:
    """One column of every part, in order; each part's piece is let go as it is copied."""
    return np.concatenate([part.pop(name) for part in parts])


def _frame(ids: pd.DataFrame, parts: list[dict], params: list[str]) -> pd.DataFrame:
    """The unit table: ids, then the parts' columns joined one at a time (the frame takes
    the joined arrays without copying them again)."""
    columns = {c: ids[c] for c in ids.columns}
    for name in list(parts[0]) if parts else []:
        columns[name] = _join(parts, name)
        if name == "status":
            columns["message"] = np.array([Status(s).message for s in columns["status"]],
                                          dtype=object)
    if not parts:
        columns |= {name: np.empty(0) for name in params}
    return pd.DataFrame(columns, copy=False)


def _unit_columns(resolved: Resolved, chunk: ChunkResult, data: UnitData) -> dict:
    """One row per unit: fitted parameters, outcome, likelihood (``message`` is added when
    the table is built, from ``status``)."""
    columns = {name: chunk.x[:, j] for j, name in enumerate(resolved.parameters.names)}
    columns |= {"sse": chunk.sse, "success": chunk.status > 0, "status": chunk.status,
                "nfev": chunk.nfev}
    obs = resolved.observations
    n = data.n_obs
    k = (len(resolved.parameters) - int(resolved.parameters.shared.sum())
         + likelihoods.extra_parameters(obs.likelihood, obs.loss, chunk.dispersion.shape[1]))
    columns |= {"n_obs": n, "objective": chunk.objective, "nll": chunk.nll}
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["aic"] = 2 * k + 2 * chunk.nll
        columns["bic"] = k * np.log(n) + 2 * chunk.nll
    if resolved.starts > 1:
        columns["starts_agree"] = chunk.starts_agree
    if chunk.dispersion.shape[1] == 1:
        columns["dispersion"] = chunk.dispersion[:, 0]
    else:
        for j, name in enumerate(obs.names[:chunk.dispersion.shape[1]]):
            columns[f"{name}_dispersion"] = chunk.dispersion[:, j]
    return columns
