"""Fit a model to every unit of a panel: validate the arguments, open the model, resolve the
problem, chunk the units, map them over a backend (saving each chunk as it is done when
there is an out folder), assemble the result."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import settings
from .assemble import Assembler, assemble
from .backends import Backend, as_backend
from .checkpoint import run_fingerprint
from .data import Panel, read_panel
from .exceptions import ConvergenceWarning, EngineError, FallbackWarning, SpecError, warn_user
from .files import sha256
from .fitting import ChunkResult, Payload, fit_chunk, fit_joint, fit_pooled_units
from .model import BatchModel, PysdModel, open_model
from .problem import Problem
from .progress import Progress
from .resolution import resolve_panel
from .resolved import Resolved, UnitData
from .results import FitResult, RunRecord, utc_now, versions
from .rundir import ResultsFolder
from .solvers import Solver, default_solver

#: Largest chunk.  Per unit, a batch of 4,096 costs 35 % less than one of 512 (NumPy's
#: per-call overhead, paid most in the last iterations when few units still work) and
#: little more is gained beyond it (benchmarks: see README, Performance).
MAX_CHUNK = 4096


def fit(
    model: BatchModel | PysdModel | str | Path,
    data: Panel | str | Path | pd.DataFrame,
    problem: Problem,
    *,
    backend: str | Backend | Any = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    solver: Solver | None = None,
    drop_invalid: bool = False,
    progress: bool = True,
    engine: str = "auto",
    method: str | None = None,
    max_steps: float | None = None,
    uncertainty: str = "gauss-newton",
    replicates: int = 200,
    bootstrap: str = "parametric",
    level: float = 0.95,
    out: str | Path | None = None,
    resume: bool = False,
    record: Mapping[str, Any] | None = None,
    also_write: Callable[[FitResult, Path], list[Path]] | None = None,
) -> FitResult:
    """Fit ``model`` separately to every unit of ``data``.

    Parameters
    ----------
    model
        A compiled model or the path of a ``.mdl`` / XMILE file.
    data
        A panel, the path of a data file or a long DataFrame (see :func:`sdfit.read_panel`;
        tidy data: ``read_panel(path_or_frame, units=[...], time=...)``).
    problem
        Parameters, targets, initial stocks, inputs, likelihood and starts.
    backend
        ``"auto"`` (default: in this process when the model runs as a compiled kernel,
        which uses every core itself, else ``"processes"``), ``"serial"``, ``"processes"``
        (a pool, all cores), ``"dask"`` (a local Dask cluster, or the one at
        ``scheduler``), a ``distributed.Client`` or a :class:`~sdfit.backends.Backend`.
    workers
        Worker processes of a local pool or cluster; default one per core.
    scheduler
        Address of a running Dask scheduler (``"tcp://host:8786"``) for ``dask``.
    chunk_size
        Units per task; default as few equal chunks as keep every worker busy, at most
        4,096 units each (one unit with the PySD engine; a resumed run keeps its own).
    solver
        Solver settings; default :func:`sdfit.solvers.default_solver` of the engine.
        Problems with shared parameters are solved jointly in this process (``backend``
        is then unused).
    drop_invalid
        Skip units with invalid needed data (listed in ``FitResult.dropped``) instead of
        refusing them.
    progress
        Show progress on stderr (a bar on a terminal, periodic lines otherwise).
    engine
        ``"batched"``, ``"pysd"`` or ``"auto"`` (batched, falling back to PySD's runtime
        with a :class:`~sdfit.FallbackWarning` when the batched engine cannot run it).
    method
        Integration method, ``"euler"`` or ``"rk4"``; default the model's own.
    max_steps
        Largest number of unit-steps (Euler steps times units and starts) of one run;
        above it the fit is refused before it starts (default 2e10).
    uncertainty, replicates, bootstrap, level
        Intervals besides Gauss–Newton's, computed after the fit for every unit at once
        (batched): ``"profile"`` (profile likelihood) or ``"bootstrap"`` (``replicates``
        per unit, ``"parametric"`` or ``"residual"`` draws), at coverage ``level``; they
        are the columns ``<parameter>_profile_low``/``_high`` (or ``_bootstrap_...``).
    out
        Results folder: each finished chunk is saved there as soon as it is done, then the
        results are assembled from the chunks and written (:meth:`FitResult.write`).
    resume
        With ``out``: skip the chunks an interrupted run of the same model, data, problem
        and chunking already saved there.
    record
        Extra fields of the run record (``spec``, ``spec_dict``, ``command``,
        ``fingerprints``).
    also_write
        With ``out``: ``also_write(result, folder)`` writes more files (figures, a report)
        into the folder being prepared, so that they replace the old ones together with
        the tables, in one step.

    Returns
    -------
    FitResult
        With the identifiability diagnostics of :mod:`sdfit.diagnostics`; an
        :class:`~sdfit.IdentifiabilityWarning` says when some parameters are not.
    """
    where = "sdfit.fit({}=...)"
    if not isinstance(problem, Problem):
        raise SpecError(f"The 'problem' argument of sdfit.fit must be a Problem; got "
                        f"{type(problem).__name__}.")
    workers = settings.check("fit", "workers", workers, where.format("workers"))
    chunk_size = settings.check("fit", "chunk_size", chunk_size, where.format("chunk_size"))
    drop_invalid = settings.check("fit", "drop_invalid", drop_invalid,
                                  where.format("drop_invalid"))
    engine = settings.check("fit", "engine", engine, where.format("engine"))
    method = settings.check("fit", "method", method, where.format("method"))
    max_steps = settings.check("fit", "max_steps", max_steps, where.format("max_steps")) \
        or settings.setting("fit", "max_steps").default
    uncertainty = settings.check("uncertainty", "method", uncertainty,
                                 where.format("uncertainty"))
    replicates = settings.check("uncertainty", "replicates", replicates,
                                where.format("replicates"))
    bootstrap = settings.check("uncertainty", "kind", bootstrap, where.format("bootstrap"))
    level = settings.check("uncertainty", "level", level, where.format("level"))
    if solver is not None and not isinstance(solver, Solver):
        raise SpecError(f"The 'solver' argument of sdfit.fit must be solver settings such as "
                        f"sdfit.LevenbergMarquardt(); got {type(solver).__name__}.")
    if resume and out is None:
        raise SpecError("resume=True needs the out folder of the interrupted run.")
    started = utc_now()
    model = open_model(model, engine)
    model_load = _model_load(model)
    panel = data if isinstance(data, Panel) else read_panel(data)
    resolved, unit_data, panel, dropped = resolve_panel(problem, model, panel,
                                                        method=method,
                                                        drop_invalid=drop_invalid)
    _check_budget(resolved, unit_data, max_steps)
    folder = ResultsFolder(out) if out is not None else None
    options = dict(solver=solver, backend=backend, workers=workers, scheduler=scheduler,
                   chunk_size=chunk_size, drop_invalid=drop_invalid, progress=progress,
                   out=folder, resume=resume)
    with folder or contextlib.nullcontext():  # locked for the run's lifetime
        try:
            result = _run(resolved, panel, unit_data, dropped, **options)
        except EngineError as error:
            if engine != "auto":
                raise
            warn_user(f"The batched engine failed while simulating '{model.name}' ({error}); "
                      "fitting with PySD's own runtime instead, one unit at a time (much "
                      "slower).", FallbackWarning)
            resolved = resolved.with_model(open_model(model.path, "pysd"))
            result = _run(resolved, panel, unit_data, dropped, **options)
        if uncertainty != "gauss-newton":
            _intervals(result, resolved, unit_data, uncertainty, replicates, bootstrap, level)
        extra = dict(record or {})
        fingerprints = {"model": sha256(model.path), "data": sha256(panel.source)
                        or panel.content_hash(), **extra.pop("fingerprints", {})}
        result.run = dataclasses.replace(result.run, **{
            **extra, "fingerprints": fingerprints, "started": started, "versions": versions(),
            "dropped": len(dropped), "model_load": model_load,
            "model": str(Path(model.path).resolve()) if model.path else "",
            "data": str(Path(panel.source).resolve()) if Path(panel.source).is_file()
            else panel.source, "request": dataclasses.asdict(problem),
            "data_layout": dict(panel.layout)})
        result.context = (resolved, unit_data, panel)
        if folder is not None:
            result.write(folder.staging)
            if also_write is not None:
                also_write(result, folder.staging)
            folder.commit()
        return result


def _run(resolved: Resolved, panel: Panel, data: UnitData, dropped: pd.DataFrame, *,
         solver, backend, workers, scheduler, chunk_size, drop_invalid, progress, out,
         resume) -> FitResult:
    engine = "pysd" if isinstance(resolved.model, PysdModel) else "batched"
    shared = bool(resolved.parameters.shared.any())
    solver = solver or default_solver(engine, shared=shared or resolved.pooling is not None)
    payload = Payload(resolved, solver)
    compile_time, kernel = _prepare(resolved, data)
    problem = resolved.describe()
    problem["method"] = resolved.method or getattr(resolved.model, "method", "euler")
    run = dict(model=resolved.model.path, data=panel.source, problem=problem,
               solver=solver.describe(), engine=engine, compile_time=compile_time)
    if isinstance(backend, str) and backend == "auto":
        backend = "dask" if scheduler else "serial" if kernel else "processes"
    if resolved.pooling is not None:
        return _pooled(resolved, panel, data, dropped, payload, run)
    if shared:
        if resolved.starts > 1:
            raise SpecError("Several starts with shared parameters are not supported: the "
                            "units form one joint problem; use starts = 1.")
        start = time.perf_counter()
        chunk = fit_joint(payload, data)
        record = RunRecord(**run, backend="joint (in process)", workers=1, chunks=1,
                           wall_time=time.perf_counter() - start)
        return assemble(resolved, panel, data, [chunk], dropped, record, joint=True)
    # PySD runs one unit per call: one unit per task so that progress moves
    chunk_size = chunk_size or (1 if engine == "pysd" else None)
    store = out
    if resume and store is not None and chunk_size is None:
        chunk_size = store.chunk_size()
    runner, owned = as_backend(backend, workers, scheduler)
    try:
        chunks = plan_chunks(len(data), chunk_size, runner.workers)
        done: set[int] = set()
        if store is not None:
            size = len(chunks[0]) if chunks else 0
            done = store.begin(run_fingerprint(resolved, panel, solver, drop_invalid, size,
                                               len(data)), size, len(chunks), resume)
        # without a folder, each chunk is reduced to its table columns as it arrives
        assembler = Assembler(resolved, panel, data)
        start = time.perf_counter()
        with Progress(len(data), f"Fitting {resolved.model.name}", progress,
                      initial=sum(len(chunks[i]) for i in done)) as bar:
            items = ((i, data.take(rows)) for i, rows in enumerate(chunks) if i not in done)
            for key, chunk in runner.map_unordered(fit_chunk, payload, items):
                if store is not None:
                    store.save_chunk(key, chunk.arrays())  # as soon as it is done: nothing lost
                else:
                    assembler.add(int(chunks[key][0]), chunk)
                bar.update(len(chunk))
        wall = time.perf_counter() - start
    finally:
        if owned:
            runner.close()
    record = RunRecord(**run, backend=runner.name, workers=runner.workers, chunks=len(chunks),
                       resumed_chunks=len(done), wall_time=wall)
    if store is None:
        return assembler.result(dropped, record)
    saved = (ChunkResult.from_arrays(store.load_chunk(i)) for i in range(len(chunks)))
    return assemble(resolved, panel, data, saved, dropped, record)


def _pooled(resolved: Resolved, panel: Panel, data: UnitData, dropped: pd.DataFrame,
            payload: Payload, run: dict) -> FitResult:
    """Every unit at once in this process: the population couples them.  The interval and
    standard-error columns are the posterior's; each pooled parameter gains its shrinkage."""
    start = time.perf_counter()
    chunk, solution = fit_pooled_units(payload, data)
    record = RunRecord(**run, backend="pooled (in process)", workers=1, chunks=1,
                       wall_time=time.perf_counter() - start,
                       intervals=f"{solution.level:.0%} posterior intervals of the pooled "
                                 f"fit ({resolved.pooling.method})")
    result = assemble(resolved, panel, data, [chunk], dropped, record)
    table = result.table
    names = resolved.parameters.names
    for j, name in enumerate(names):
        table[f"{name}_stderr"] = solution.stderr[:, j]
        table[f"{name}_ci_low"] = solution.lower[:, j]
        table[f"{name}_ci_high"] = solution.upper[:, j]
        if resolved.parameters.pooled[j]:
            table[f"{name}_shrinkage"] = solution.shrinkage[:, j]
    result.population = solution.population_table(names, list(resolved.pooling.covariates))
    if not solution.converged:
        warn_user(f"The pooled fit did not converge: {solution.message}", ConvergenceWarning)
    return result


def _intervals(result: FitResult, resolved: Resolved, data: UnitData, method: str,
               replicates: int, kind: str, level: float) -> None:
    """Profile-likelihood or bootstrap intervals of every unit, batched, as columns beside
    the Gauss–Newton ones."""
    from .objective import Objective
    from .solvers.uncertainty import bootstrap_intervals, profile_intervals

    if resolved.parameters.shared.any() or resolved.pooling is not None:
        raise SpecError(f"{method.capitalize()} intervals are for independent units; with "
                        "shared or pooled parameters the joint fit gives its own.")
    objective = Objective(resolved, data)
    if resolved.parameters.penalised.size:
        raise SpecError(f"{method.capitalize()} intervals do not take ridge penalties.")

    def fun(x, units):
        return objective.data_residuals(objective.outputs(x, units), units)

    p = resolved.parameters
    x = result.table[p.names].to_numpy(float)
    scale = "fixed" if resolved.observations.likelihood in ("poisson", "negative-binomial") \
        else "estimate"
    options = dict(n_obs=data.n_obs, scale=scale, level=level)
    if method == "profile":
        found = profile_intervals(fun, x, p.lower, p.upper, **options)
    else:
        found = bootstrap_intervals(fun, x, p.lower, p.upper, kind=kind,
                                    replicates=replicates, seed=resolved.seed, **options)
    word = "profile" if method == "profile" else "bootstrap"
    for j, name in enumerate(p.names):
        result.table[f"{name}_{word}_low"] = found.lower[:, j]
        result.table[f"{name}_{word}_high"] = found.upper[:, j]
    what = ("profile-likelihood" if method == "profile"
            else f"{kind} bootstrap ({replicates} replicates)")
    result.run = dataclasses.replace(
        result.run, intervals=f"Gauss–Newton in *_ci_low/_ci_high; {level:.0%} {what} in "
                              f"*_{word}_low/_high")


def _model_load(model) -> dict:
    """How the model was just loaded (seconds, from the compiled-model cache or not)."""
    from .model.compiler import cache

    last = cache.last_load
    if last is None or last.path != str(model.path):
        return {}
    return {"seconds": last.seconds, "cached": last.cached}


def _prepare(resolved: Resolved, data: UnitData) -> tuple[float, bool]:
    """Build the compiled C this fit will run here, once, before workers start (forked
    workers find it built; others load it from the cache): the model's kernel, the
    solver's loop or iteration, the residuals' C function, the diagnostics' SVD — side by
    side, one compiler per core, when the user cache does not have them yet.  Returns
    the wall seconds spent compiling (0 when the cache had everything) and whether the
    model runs as a compiled kernel."""
    from concurrent.futures import ThreadPoolExecutor

    from . import compiled_residuals, diagnostics, native
    from .solvers import lm

    before, started = native.compile_seconds, time.perf_counter()
    record = tuple(dict.fromkeys(s.ident for s in resolved.observations.slots))
    p = len(resolved.parameters)
    m = data.obs_mask.shape[1] + len(resolved.parameters.penalised)
    builds = [lambda: isinstance(resolved.model, BatchModel) and resolved.model.prepare(record),
              lambda: diagnostics.prepare(m, p)]
    if compiled_residuals.covers(resolved):  # the solver's whole loop in C, for this shape
        builds += [lambda: lm.compiled((m, p)), compiled_residuals.prepare]
    else:
        builds.append(lm.compiled)
    with ThreadPoolExecutor(len(builds)) as pool:
        kernel = list(pool.map(lambda build: build(), builds))[0]
    compiled = native.compile_seconds > before
    return (time.perf_counter() - started if compiled else 0.0), bool(kernel)


def plan_chunks(n_units: int, chunk_size: int | None, workers: int) -> list[np.ndarray]:
    """Split unit rows into contiguous chunks.  By default: the same number of equal
    chunks for every worker, as few as keep each chunk within MAX_CHUNK units, since a
    bigger batch amortises the per-call overhead better."""
    if chunk_size is None:
        rounds = max(1, math.ceil(n_units / (workers * MAX_CHUNK)))
        chunk_size = max(1, math.ceil(n_units / (workers * rounds)))
    chunk_size = settings.check("fit", "chunk_size", chunk_size, "chunk size")
    return [np.arange(i, min(i + chunk_size, n_units)) for i in range(0, n_units, chunk_size)]


def _check_budget(resolved: Resolved, data: UnitData, max_steps: float) -> None:
    """Refuse a run whose Euler steps times units exceed the budget, before it starts."""
    last = float(np.max(np.where(data.obs_mask, data.obs_time, -np.inf)))
    steps = math.ceil((last - resolved.start_time) / resolved.time_step - 1e-9) + 1
    rows = len(data) * resolved.starts
    if steps * rows > max_steps:
        raise SpecError(
            f"The run has {steps:,} time steps (TIME STEP {resolved.time_step:g} from "
            f"{resolved.start_time:g} to {last:g}) for {rows:,} units: {steps * rows:.3g} "
            f"unit-steps per simulation, above the limit of {max_steps:.3g}; raise it with "
            "--max-steps (or [fit] max_steps) if this is intended.")
