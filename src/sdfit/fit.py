"""Fit a model to every unit of a panel: chunk the units, map them over a backend, save each
chunk as it is done (with an out folder), gather."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .backends import Backend, as_backend
from .checkpoint import run_fingerprint
from .data import Panel, read_panel
from .diagnostics import add_diagnostics, summarise, unit_diagnostics
from .exceptions import DataError
from .model import BatchModel, PysdModel, open_model
from .problem import FitTask, Problem, UnitData
from .results import FitResult, fingerprint
from .rundir import ResultsFolder
from .solvers import LevenbergMarquardt, ScipyLeastSquares, Solution
from .solvers.shared import fit_shared

#: Largest chunk.  Per unit, a batch of 4,096 costs 35 % less than one of 512 (NumPy's
#: per-call overhead, paid most in the last iterations when few units still work) and
#: little more is gained beyond it (benchmarks: see README, Performance).
MAX_CHUNK = 4096


def fit(
    model: BatchModel | PysdModel | str | Path,
    data: Panel | str | Path,
    problem: Problem,
    *,
    backend: str | Backend | Any = "processes",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    solver=None,
    drop_invalid: bool = False,
    progress: bool = True,
    engine: str = "auto",
    out: str | Path | None = None,
    resume: bool = False,
    info: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit ``model`` separately to every unit of ``data``.

    Parameters
    ----------
    model
        A compiled model or the path of a ``.mdl`` / XMILE file.
    data
        A panel or the path of a data file (see :func:`sdfit.read_panel`).
    problem
        Parameters, initial stocks and targets.
    backend
        ``"serial"``, ``"processes"`` (default, all cores), ``"dask"`` (a local
        Dask cluster, or the one at ``scheduler``), a ``distributed.Client``
        connected to a cluster, or a :class:`~sdfit.backends.Backend` instance.
    workers
        Worker processes of a local pool or cluster; default one per core.
    scheduler
        Address of a running Dask scheduler (``"tcp://host:8786"``) for the
        ``dask`` backend; without it, ``dask`` starts a local cluster.
    chunk_size
        Units per task; default as few equal chunks as keep every worker busy, at
        most 4,096 units each (one
        unit with the PySD engine; a resumed run keeps the chunk size it started with).
    solver
        A solver settings object; default :class:`LevenbergMarquardt`
        (:class:`ScipyLeastSquares` with the PySD engine).  Problems with shared
        parameters are solved jointly in this process with its tolerances (see
        :mod:`sdfit.solvers.shared`); ``backend`` is then unused.
    drop_invalid
        Skip units with missing, non-numeric, negative or infinite values in the
        data the problem needs (listed in ``FitResult.dropped``) instead of refusing.
    progress
        Show a progress bar over units.
    engine
        ``"batched"`` (all units of a chunk at once), ``"pysd"`` (PySD's own
        runtime, one unit at a time) or ``"auto"`` (default: batched, falling
        back to PySD with a :class:`~sdfit.FallbackWarning` when the model uses
        a construct the batched engine does not compile).
    out
        Results folder.  Each finished chunk is saved in ``out/chunks`` as soon as
        it is done, so nothing is lost and the fit runs in flat memory; at the end
        the results are assembled from the chunks and written there
        (:meth:`FitResult.write`), and the chunks removed.
    resume
        With ``out``: skip the chunks an interrupted run of the same model, data,
        problem and chunking already saved there.
    info
        Extra entries for ``FitResult.info`` (and ``run.json``); its
        ``fingerprints`` join those of the model and data.

    Returns
    -------
    FitResult
        With the identifiability diagnostics of :mod:`sdfit.diagnostics` after the
        core columns; an :class:`~sdfit.IdentifiabilityWarning` says when some
        parameters are not identifiable.
    """
    model = open_model(model, engine)
    pysd_engine = isinstance(model, PysdModel)
    panel = data if isinstance(data, Panel) else read_panel(data)
    task, unit_data = problem.resolve(model, panel)
    panel, unit_data, dropped = _valid_units(panel, unit_data, task, drop_invalid)
    # PySD runs one unit per call: SciPy's per-unit solver, and one unit per task so
    # that the progress bar moves
    solver = solver or (ScipyLeastSquares() if pysd_engine else LevenbergMarquardt())
    chunk_size = chunk_size or (1 if pysd_engine else None)
    folder = ResultsFolder(out) if out is not None else None
    with folder or contextlib.nullcontext():
        if task.shared.any():
            result = _fit_shared(task, panel, unit_data, solver, dropped)
        else:
            result = _fit_chunks(task, panel, unit_data, solver, dropped, backend, workers,
                                 scheduler, chunk_size, drop_invalid, progress, folder, resume)
        _add_info(result, info or {})
        if folder is not None:
            result.write(folder.staging)
            folder.commit()
    return result


def _fit_chunks(task: FitTask, panel: Panel, unit_data: UnitData, solver, dropped,
                backend, workers, scheduler, chunk_size, drop_invalid, progress,
                store: ResultsFolder | None, resume) -> FitResult:
    """Independent units: chunks mapped over a backend, each saved as it finishes when
    there is an out folder (so that an interrupted run resumes)."""
    if resume and store is not None and chunk_size is None:
        chunk_size = store.chunk_size()
    runner, owned = as_backend(backend, workers, scheduler)
    try:
        chunks = plan_chunks(len(unit_data), chunk_size, runner.workers)
        done: set[int] = set()
        if store is not None:
            size = len(chunks[0]) if chunks else 0
            prints = run_fingerprint(task, panel, solver, drop_invalid, size, len(unit_data))
            done = store.begin(prints, size, len(chunks), resume)
        solutions: dict[int, Solution] = {}
        start = time.perf_counter()
        with tqdm(total=len(unit_data), unit="unit", disable=not progress,
                  desc=f"Fitting {task.model.name}",
                  initial=sum(len(chunks[i]) for i in done)) as bar:
            items = ((i, unit_data.take(rows)) for i, rows in enumerate(chunks) if i not in done)
            for key, solution in runner.map_unordered(fit_chunk, (task, solver), items):
                if store is not None:
                    # as soon as it is done: nothing lost
                    store.save_chunk(key, {f.name: getattr(solution, f.name)
                                           for f in dataclasses.fields(solution)})
                else:
                    solutions[key] = solution
                bar.update(len(solution.sse))
        wall = time.perf_counter() - start
    finally:
        if owned:
            runner.close()
    info = {"model": task.model.path, "data": panel.source,
            "engine": "pysd" if isinstance(task.model, PysdModel) else "batched",
            "backend": runner.name, "workers": runner.workers, "chunks": len(chunks),
            "resumed_chunks": len(done), "wall_time": wall}
    saved = (Solution(**store.load_chunk(i)) if store is not None else solutions[i]
             for i in range(len(chunks)))
    return assemble(task, panel, unit_data, saved, dropped, info)


def _add_info(result: FitResult, info: Mapping[str, Any]) -> None:
    extra = dict(info)
    result.info.setdefault("fingerprints", {}).update(extra.pop("fingerprints", {}))
    result.info.update(extra)


def _fit_shared(task: FitTask, panel: Panel, data: UnitData, solver, dropped) -> FitResult:
    """All units at once in this process: shared parameters couple them."""
    start = time.perf_counter()
    solution = fit_shared(task, data, solver)
    info = {"model": task.model.path, "data": panel.source,
            "engine": "pysd" if isinstance(task.model, PysdModel) else "batched",
            "backend": "joint (in process)", "workers": 1, "chunks": 1,
            "wall_time": time.perf_counter() - start}
    result = assemble(task, panel, data, [solution], dropped, info, diagnose=False)
    return add_diagnostics(result, solution.jacobian)


def fit_chunk(shared: tuple[FitTask, object], data: UnitData) -> Solution:
    """Fit every unit of one chunk with the batched solver (runs on a worker)."""
    task, solver = shared

    def residuals(x: np.ndarray, units: np.ndarray) -> np.ndarray:
        return task.residuals(x, data.initial[units], data.observed[units])

    x0 = np.broadcast_to(task.x0, (len(data), len(task.x0)))
    return solver.solve(residuals, x0, task.lower, task.upper)


def plan_chunks(n_units: int, chunk_size: int | None, workers: int) -> list[np.ndarray]:
    """Split unit rows into contiguous chunks.  By default: the same number of equal
    chunks for every worker, as few as keep each chunk within MAX_CHUNK units, since a
    bigger batch amortises the per-call overhead better."""
    if chunk_size is None:
        rounds = max(1, math.ceil(n_units / (workers * MAX_CHUNK)))
        chunk_size = max(1, math.ceil(n_units / (workers * rounds)))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    return [np.arange(i, min(i + chunk_size, n_units)) for i in range(0, n_units, chunk_size)]


def assemble(task: FitTask, panel: Panel, data: UnitData, solutions: Iterable[Solution],
             dropped: pd.DataFrame, info: dict, diagnose: bool = True) -> FitResult:
    """Gather chunk solutions (in unit order) into a FitResult, one chunk at a time: each
    chunk's diagnostics come from its Jacobians, which are then let go, so memory grows
    with the tables only.  ``sse`` and the fitted targets leave out ridge penalties."""
    ids = panel.units.to_frame(index=False)
    problem = task.describe()
    tables, targets, penalty_only, first = [], [], Counter(), 0
    for solution in solutions:
        rows = slice(first, first + len(solution.x))
        first = rows.stop
        table = _unit_table(task, ids.iloc[rows], solution)
        if diagnose:
            columns, penalised = unit_diagnostics(solution.jacobian, table["sse"].to_numpy(),
                                                  solution.x, list(task.parameters), problem)
            table = pd.concat([table, pd.DataFrame(columns)], axis=1)
            penalty_only.update(penalised)
        tables.append(table)
        targets.append(_target_table(task, ids.iloc[rows], data.observed[rows], solution))
    info = {**info, "problem": problem,
            "fingerprints": {"model": fingerprint(task.model.path),
                             "data": fingerprint(panel.source)}}
    result = FitResult(pd.concat(tables, ignore_index=True),
                       pd.concat(targets, ignore_index=True), list(task.parameters),
                       dropped, info)
    return summarise(result, dict(penalty_only)) if diagnose else result


def _unit_table(task: FitTask, ids: pd.DataFrame, solution: Solution) -> pd.DataFrame:
    """One row per unit: ids, fitted parameters, outcome."""
    table = pd.concat([ids.reset_index(drop=True),
                       pd.DataFrame(solution.x, columns=list(task.parameters))], axis=1)
    residuals = solution.residuals[:, :len(task.targets)]
    table["sse"] = np.einsum("ij,ij->i", residuals, residuals)
    table["success"] = solution.status > 0
    table["status"] = solution.status
    table["message"] = solution.messages
    table["nfev"] = solution.nfev
    return table


def _target_table(task: FitTask, ids: pd.DataFrame, observed: np.ndarray,
                  solution: Solution) -> pd.DataFrame:
    """One row per unit and target: ids, time, variable, observed, fitted."""
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = observed + solution.residuals[:, :len(task.targets)] / task.sqrt_weights
    n = len(ids)
    return pd.DataFrame({
        **{c: np.repeat(ids[c].to_numpy(), len(task.targets)) for c in ids.columns},
        "time": np.tile([t for t, _ in task.targets], n),
        "variable": np.tile([v for _, v in task.targets], n),
        "observed": observed.ravel(),
        "fitted": fitted.ravel(),
    })


def _valid_units(panel: Panel, data: UnitData, task: FitTask, drop: bool):
    """Refuse (or drop) units whose needed data is non-numeric, missing, negative or
    infinite, naming each unit, its line and the first value at fault."""
    values = np.concatenate([data.initial, data.observed], axis=1)
    bad = ~np.isfinite(values) | (values < 0)
    rows = np.flatnonzero(bad.any(axis=1))
    if not len(rows):
        return panel, data, pd.DataFrame()
    columns = [(panel.time(task.start_time), panel.variable(s)) for s in task.stocks] + [
        (t, panel.variable(v)) for t, v in task.targets]
    why = []
    for row in rows:  # only the invalid units: no per-unit Python for valid data
        col = int(np.argmax(bad[row]))
        value, (time, name) = values[row, col], columns[col]
        text = panel.non_numeric.get((int(panel.lines[row]), time, name))
        kind = (f"non-numeric value '{text}'" if text is not None else
                "missing value" if np.isnan(value) else
                "infinite value" if np.isinf(value) else f"negative value {value:g}")
        why.append(f"{kind} in column '{name}' at time {time:g}")
    if not drop:
        listed = "; ".join(f"{panel.describe_rows([row])}: {reason}"
                           for row, reason in zip(rows[:5], why, strict=False))
        more = f"; and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise DataError(
            f"Data file '{panel.source}' has {len(rows)} unit(s) with non-numeric, missing, "
            f"negative or infinite values the problem needs: {listed}{more}; fix them or pass "
            "--drop-invalid to skip these units.")
    dropped = panel.units[rows].to_frame(index=False).assign(line=panel.lines[rows], reason=why)
    keep = np.ones(len(values), dtype=bool)
    keep[rows] = False
    return panel.take(keep), data.take(keep), dropped
