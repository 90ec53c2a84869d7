"""Fit a model to every unit of a panel: chunk the units, map them over a backend, gather."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .backends import Backend, get_backend
from .data import Panel, read_panel
from .diagnostics import add_diagnostics
from .exceptions import DataError
from .model import BatchModel, PysdModel, open_model
from .problem import FitTask, Problem, UnitData
from .results import FitResult, fingerprint
from .solvers import LevenbergMarquardt, ScipyLeastSquares, Solution
from .solvers.shared import fit_shared

#: Largest chunk: big enough to amortise Python overhead, small enough to stay in cache.
MAX_CHUNK = 1024


def fit(
    model: BatchModel | PysdModel | str | Path,
    data: Panel | str | Path,
    problem: Problem,
    *,
    backend: str | Backend = "processes",
    workers: int | None = None,
    chunk_size: int | None = None,
    solver=None,
    drop_invalid: bool = False,
    progress: bool = True,
    engine: str = "auto",
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
        ``"serial"``, ``"processes"`` (default, all cores), ``"dask"``, or a
        :class:`~sdfit.backends.Backend` instance.
    workers
        Worker processes for the ``processes`` backend; default one per core.
    chunk_size
        Units per task; default a few chunks per worker, at most 1024 units (one
        unit with the PySD engine).
    solver
        A solver settings object; default :class:`LevenbergMarquardt`
        (:class:`ScipyLeastSquares` with the PySD engine).  Problems with shared
        parameters are solved jointly in this process with its tolerances (see
        :mod:`sdfit.solvers.shared`); ``backend`` is then unused.
    drop_invalid
        Skip units with missing, negative or infinite values in the data the
        problem needs (listed in ``FitResult.dropped``) instead of refusing.
    progress
        Show a progress bar over units.
    engine
        ``"batched"`` (all units of a chunk at once), ``"pysd"`` (PySD's own
        runtime, one unit at a time) or ``"auto"`` (default: batched, falling
        back to PySD with a :class:`~sdfit.FallbackWarning` when the model uses
        a construct the batched engine does not compile).

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
    if task.shared.any():
        return _fit_shared(task, panel, unit_data, solver, dropped)

    owned = not isinstance(backend, Backend)
    runner = get_backend(backend, workers=workers) if owned else backend
    chunks = plan_chunks(len(unit_data), chunk_size, runner.workers)
    solutions: dict[int, Solution] = {}
    start = time.perf_counter()
    try:
        with tqdm(total=len(unit_data), unit="unit", disable=not progress,
                  desc=f"Fitting {model.name}") as bar:
            items = ((i, unit_data.take(rows)) for i, rows in enumerate(chunks))
            for key, solution in runner.map_unordered(fit_chunk, (task, solver), items):
                solutions[key] = solution
                bar.update(len(solution.sse))
    finally:
        if owned:
            runner.close()
    wall = time.perf_counter() - start
    info = {"model": model.path, "data": panel.source,
            "engine": "pysd" if pysd_engine else "batched", "backend": runner.name,
            "workers": runner.workers, "chunks": len(chunks), "wall_time": wall}
    return add_diagnostics(assemble(task, panel, unit_data,
                                    [solutions[i] for i in range(len(chunks))], dropped, info))


def _fit_shared(task: FitTask, panel: Panel, data: UnitData, solver, dropped) -> FitResult:
    """All units at once in this process: shared parameters couple them."""
    start = time.perf_counter()
    solution = fit_shared(task, data, solver)
    info = {"model": task.model.path, "data": panel.source,
            "engine": "pysd" if isinstance(task.model, PysdModel) else "batched",
            "backend": "joint (in process)", "workers": 1, "chunks": 1,
            "wall_time": time.perf_counter() - start}
    return add_diagnostics(assemble(task, panel, data, [solution], dropped, info))


def fit_chunk(shared: tuple[FitTask, object], data: UnitData) -> Solution:
    """Fit every unit of one chunk with the batched solver (runs on a worker)."""
    task, solver = shared

    def residuals(x: np.ndarray, units: np.ndarray) -> np.ndarray:
        return task.residuals(x, data.initial[units], data.observed[units])

    x0 = np.broadcast_to(task.x0, (len(data), len(task.x0)))
    return solver.solve(residuals, x0, task.lower, task.upper)


def plan_chunks(n_units: int, chunk_size: int | None, workers: int) -> list[np.ndarray]:
    """Split unit rows into contiguous chunks: by default about four per worker, so
    that the pool stays busy until the end, and at most MAX_CHUNK units each."""
    if chunk_size is None:
        chunk_size = min(MAX_CHUNK, max(1, math.ceil(n_units / (4 * workers))))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    return [np.arange(i, min(i + chunk_size, n_units)) for i in range(0, n_units, chunk_size)]


def assemble(task: FitTask, panel: Panel, data: UnitData, solutions: Sequence[Solution],
             dropped: pd.DataFrame, info: dict) -> FitResult:
    """Gather chunk solutions (in unit order) into a FitResult.  ``sse`` and the fitted
    targets leave out the ridge penalties; the Jacobian keeps their rows."""
    x = np.concatenate([s.x for s in solutions])
    residuals = np.concatenate([s.residuals for s in solutions])[:, :len(task.targets)]
    status = np.concatenate([s.status for s in solutions])
    ids = panel.units.to_frame(index=False)
    table = pd.concat([ids, pd.DataFrame(x, columns=list(task.parameters))], axis=1)
    table["sse"] = np.einsum("ij,ij->i", residuals, residuals)
    table["success"] = status > 0
    table["status"] = status
    table["message"] = [m for s in solutions for m in s.messages]
    table["nfev"] = np.concatenate([s.nfev for s in solutions])
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = data.observed + residuals / task.sqrt_weights
    targets = pd.DataFrame({
        **{c: np.repeat(ids[c].to_numpy(), len(task.targets)) for c in ids.columns},
        "time": np.tile([t for t, _ in task.targets], len(ids)),
        "variable": np.tile([v for _, v in task.targets], len(ids)),
        "observed": data.observed.ravel(),
        "fitted": fitted.ravel(),
    })
    jacobian = np.concatenate([s.jacobian for s in solutions])
    info = {**info, "problem": task.describe(),
            "fingerprints": {"model": fingerprint(task.model.path),
                             "data": fingerprint(panel.source)}}
    return FitResult(table, targets, list(task.parameters), jacobian, dropped, info)


def _valid_units(panel: Panel, data: UnitData, task: FitTask, drop: bool):
    """Refuse (or drop) units whose needed data is missing, negative or infinite."""
    values = np.concatenate([data.initial, data.observed], axis=1)
    names = [f"'{s}' at {task.start_time:g}" for s in task.stocks] + [
        f"'{v}' at {t:g}" for t, v in task.targets]
    reasons = {"missing": np.isnan(values), "infinite": np.isinf(values),
               "negative": values < 0}
    bad = np.zeros(len(values), dtype=bool)
    for mask in reasons.values():
        bad |= mask.any(axis=1)
    if not bad.any():
        return panel, data, pd.DataFrame()
    rows = np.flatnonzero(bad)
    if not drop:
        row = rows[0]
        kind, col = next((k, int(np.argmax(m[row]))) for k, m in reasons.items() if m[row].any())
        raise DataError(
            f"Data file '{panel.source}' has {len(rows)} unit(s) with missing, negative or "
            f"infinite values the problem needs, first {panel.describe_rows(list(rows))}: "
            f"{kind} value for {names[col]}; fix them or pass "
            "--drop-invalid to skip these units."
        )
    why = []
    for row in rows:
        kind, col = next((k, int(np.argmax(m[row]))) for k, m in reasons.items() if m[row].any())
        why.append(f"{kind} value for {names[col]}")
    dropped = panel.units[rows].to_frame(index=False).assign(reason=why)
    keep = ~bad
    return panel.take(keep), data.take(keep), dropped
