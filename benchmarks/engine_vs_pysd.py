"""The batched engine against PySD's ``model.run`` on the largest scalar test models.

For each model (the largest conformance folders without subscripts, by number of
equations, plus the aging chain) both engines simulate the whole horizon and
return the canonical output's columns; the batched engine gets every constant and
initial stock as one value per unit (as when fitting), so that it computes on
arrays of B units even where all units are alike.  Per simulated step the table shows
PySD's cost for one unit, the batched engine's cost for one unit (B = 1) and
for a batch, and that batch's cost per unit-step; the last column is how many
times cheaper a unit-step is in the batch than in PySD.  Times are medians of
``--repeat`` runs, both engines timed in the same process, one after the other.

Usage: SDFIT_DATA=../shared/data python benchmarks/engine_vs_pysd.py [--models 8]
       [--batch 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pysd

import sdfit
from sdfit import conformance
from sdfit.datasets import aging_chain_path, data_dir
from sdfit.model.translate import translate


def median_seconds(run, repeat: int) -> float:
    run()  # warm: caches, generated program
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cases(tests: Path, count: int) -> list[tuple[str, Path, list[str] | None]]:
    """The ``count`` largest scalar test models (by program statements), and the aging chain."""
    sized = []
    for folder in conformance.suite_folders(tests):
        path = conformance.pick_model(folder)
        abstract = translate(path)
        if conformance.uses_subscripts(abstract):
            continue
        try:
            model = sdfit.model.compile_model(abstract, path)
        except sdfit.SdfitError:
            continue
        size = len(model.assignments) + len(model.states)
        sized.append((size, folder.name, path, list(conformance.read_canonical(folder).columns)))
    sized.sort(reverse=True)
    return [(name, path, columns) for _, name, path, columns in sized[:count]] + [
        ("aging chain (bundled)", aging_chain_path(), None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="largest scalar test models")
    parser.add_argument("--batch", type=int, default=1000, help="units of the batched run")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    root = data_dir()
    if root is None:
        raise SystemExit("Set SDFIT_DATA to the shared data folder (it holds test-models).")

    print(f"{'model':<26} {'eqs':>4} {'steps':>6} {'PySD us/step':>13} "
          f"{'B=1 us/step':>12} {f'B={args.batch} us/step':>16} {'us/unit-step':>13} "
          f"{'PySD/batched':>13}")
    for name, path, columns in cases(root / "test-models" / "tests", args.models):
        size, steps, pysd_s, one_s, batch_s = measure(path, columns, args.batch, args.repeat)
        per_unit_step = batch_s / steps / args.batch
        print(f"{name:<26} {size:>4} {steps:>6} {1e6 * pysd_s / steps:>13.1f} "
              f"{1e6 * one_s / steps:>12.1f} {1e6 * batch_s / steps:>16.1f} "
              f"{1e6 * per_unit_step:>13.4f} {pysd_s / steps / per_unit_step:>13,.0f}")


def measure(path: Path, columns: list[str] | None, batch: int, repeat: int):
    """(program statements, steps, PySD s/run, batched B=1 s/run, batched B=batch s/run)."""
    model = sdfit.load_model(path)
    names = [model.variable(c).name for c in columns or model.stocks if _known(model, c)]
    steps = max(len(model.run(1, return_columns=names[:1]).times) - 1, 1)
    with tempfile.TemporaryDirectory() as tmp:  # PySD writes its .py beside the model
        copy = Path(tmp) / path.name
        shutil.copy(path, copy)
        reader = pysd.read_vensim if path.suffix.lower() == ".mdl" else pysd.read_xmile
        reference = reader(str(copy))
        pysd_s = median_seconds(lambda: reference.run(return_columns=names), repeat)
    one, many = per_unit(model, 1), per_unit(model, batch)
    one_s = median_seconds(lambda: model.run(1, return_columns=names, **one), repeat)
    batch_s = median_seconds(lambda: model.run(batch, return_columns=names, **many), repeat)
    return len(model.assignments) + len(model.states), steps, pysd_s, one_s, batch_s


def per_unit(model, batch: int) -> dict:
    """Every constant and initial stock given one value per unit (their own values), so
    that the batched run really computes arrays of ``batch`` units, as when fitting."""
    start = model.run(1, return_columns=model.stocks, stop_time=model.initial_time) \
        if model.stocks else None
    return {"params": {c: np.full(batch, model.constant_value(c)) for c in model.constants},
            "initial": {s: np.full(batch, start.values[s][0, 0]) for s in model.stocks}}


def _known(model, name: str) -> bool:
    try:
        model.variable(name)
    except sdfit.SdfitError:
        return False
    return True


if __name__ == "__main__":
    main()
