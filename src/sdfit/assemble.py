"""Assemble chunk results into a :class:`~sdfit.results.FitResult`, one chunk at a time and
in any order: each chunk goes on arrival into the rows of the finished tables' columns (its
diagnostics come from its Jacobians, which are then let go), so that memory holds the
tables and little else (a million units: issue 15)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import likelihoods
from .data import Panel
from .data.panel import code_dtype
from .diagnostics import add_diagnostics, summarise, unit_diagnostics
from .fitting import ChunkResult
from .resolved import Resolved, UnitData
from .results import FitResult, RunRecord, status_messages


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
    """Collects chunk results as they come (``add(first_unit, chunk)``, any order), each
    written at once into the columns of the finished tables, allocated whole when the first
    chunk arrives: no per-chunk pieces are kept, whose freed memory the allocator would
    not give back (a million units: 0.7 GB of resident memory left over)."""

    def __init__(self, resolved: Resolved, panel: Panel, data: UnitData, joint: bool = False):
        self.resolved, self.panel, self.data, self.joint = resolved, panel, data, joint
        # first target row of each unit
        self.offsets = np.concatenate([[0], np.cumsum(data.n_obs)])
        # the target variables' codes kept as those of the finished categorical column
        self.codes = code_dtype(len(resolved.observations.slots))
        # every unit has every slot (a dense panel): the targets' time, variable and observed
        # columns are then the unit data's arrays flattened, not a second copy of them
        self.dense = bool(data.obs_mask.all())
        self.units: dict[str, np.ndarray] = {}
        self.targets: dict[str, np.ndarray] = {}
        self.penalty_only: Counter = Counter()
        self.jacobians: dict[int, np.ndarray] = {}  # joint fits only

    def add(self, first: int, chunk: ChunkResult) -> None:
        rows = slice(first, first + len(chunk))
        part = self.data.take(rows)
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
        # no unit number per target row: the rows of unit i are offsets[i]:offsets[i + 1]
        targets = {"fitted": chunk.fitted[mask]}
        if not self.dense:
            targets |= {"time": part.obs_time[mask],
                        "variable": part.obs_var[mask].astype(self.codes),
                        "observed": part.obs_value[mask]}
        _put(self.units, columns, rows, len(self.data))
        _put(self.targets, targets, slice(self.offsets[rows.start], self.offsets[rows.stop]),
             int(self.offsets[-1]))

    def result(self, dropped: pd.DataFrame, run: RunRecord) -> FitResult:
        names = self.resolved.parameters.names
        units = self.panel.units  # the id columns as arrays: Series would be aligned
        ids = {name: units.get_level_values(i).array for i, name in enumerate(units.names)}
        columns = dict(ids)
        for name, values in self.units.items():
            columns[name] = values
            if name == "status":
                columns["message"] = status_messages(values)
        if not self.units:
            columns |= {name: np.empty(0) for name in names}
        table = pd.DataFrame(columns, copy=False)
        targets, self.units, self.targets = self.targets or _no_targets(self.codes), {}, {}
        if self.dense:  # shared with the unit data the result keeps as its context
            data = self.data
            targets |= {"time": data.obs_time.reshape(-1), "variable": data.obs_var.reshape(-1),
                        "observed": data.obs_value.reshape(-1)}
        n_obs = np.diff(self.offsets)
        columns = {c: np.repeat(values.to_numpy(), n_obs) for c, values in ids.items()}
        variable = pd.Categorical.from_codes(targets["variable"],
                                             self.resolved.observations.names)
        columns |= {"time": targets["time"], "variable": variable,
                    "observed": targets["observed"], "fitted": targets["fitted"]}
        result = FitResult(table, pd.DataFrame(columns, copy=False), names, dropped, run)
        if self.joint:
            jacobians = np.concatenate([self.jacobians[k] for k in sorted(self.jacobians)])
            return add_diagnostics(result, jacobians, self.data.n_obs)
        return summarise(result, dict(self.penalty_only))


def _put(table: dict[str, np.ndarray], columns: dict, rows: slice, length: int) -> None:
    """Write one chunk's ``columns`` into ``rows`` of the table's (allocated the first time)."""
    for name, values in columns.items():
        values = np.asarray(values)
        if name not in table:
            table[name] = np.empty((length, *values.shape[1:]), dtype=values.dtype)
        table[name][rows] = values


def _no_targets(codes: type) -> dict[str, np.ndarray]:
    return {"time": np.empty(0), "variable": np.empty(0, codes), "observed": np.empty(0),
            "fitted": np.empty(0)}


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
